-- HelloWorld's models extend Service and Tenant (multi-table inheritance): written by hand from
-- the statements `xos makemigrations` generated, plus the data step they cannot know. Each existing
-- HelloWorld service and tenant gets a new id above every Service (Tenant) id, a Service (Tenant)
-- row with that id and kind `helloworld`; a tenant's `service` becomes its `provider_service`.
-- The new ids are computed before anything is written, so every table agrees on them; the
-- tenants are copied aside and come back after the services table is rebuilt, so each foreign key
-- holds as soon as its row is written.

PRAGMA defer_foreign_keys = ON;

CREATE TEMPORARY TABLE xos_hw_tenant AS
SELECT "id" + ((SELECT COALESCE(MAX(id), 0) FROM core_tenant) + (SELECT COALESCE(MAX(id), 0) FROM helloworld_helloworldtenant)) AS "id", "created" AS "created", "updated" AS "updated", "enacted" AS "enacted", "policed" AS "policed", "backend_register" AS "backend_register", "backend_status" AS "backend_status", "deleted" AS "deleted", "write_protect" AS "write_protect", "lazy_blocked" AS "lazy_blocked", "no_sync" AS "no_sync", "row_version" AS "row_version", "enacted_version" AS "enacted_version", "policed_version" AS "policed_version", 'helloworld' AS "kind", 'na' AS "connect_method", "name" AS "name", "service_id" + ((SELECT COALESCE(MAX(id), 0) FROM core_service) + (SELECT COALESCE(MAX(id), 0) FROM helloworld_helloworldservice)) AS "provider_service_id", "display_message" AS "display_message", "port" AS "port", "pid" AS "pid"
FROM helloworld_helloworldtenant;

CREATE TABLE helloworld_helloworldservice__new (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "created" TEXT NOT NULL,
    "updated" TEXT NOT NULL,
    "enacted" TEXT,
    "policed" TEXT,
    "backend_register" TEXT DEFAULT '{}',
    "backend_status" TEXT NOT NULL DEFAULT '0 - Provisioning in progress',
    "deleted" BOOLEAN NOT NULL DEFAULT 0,
    "write_protect" BOOLEAN NOT NULL DEFAULT 0,
    "lazy_blocked" BOOLEAN NOT NULL DEFAULT 0,
    "no_sync" BOOLEAN NOT NULL DEFAULT 1,
    "row_version" INTEGER NOT NULL DEFAULT 1,
    "enacted_version" INTEGER NOT NULL DEFAULT 0,
    "policed_version" INTEGER NOT NULL DEFAULT 0,
    "description" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT 1,
    "kind" TEXT NOT NULL DEFAULT 'helloworld',
    "name" TEXT NOT NULL,
    "versionNumber" TEXT NOT NULL,
    "published" BOOLEAN NOT NULL DEFAULT 1,
    "view_url" TEXT,
    "icon_url" TEXT,
    "public_key" TEXT,
    "private_key_fn" TEXT,
    "service_specific_id" TEXT,
    "service_specific_attribute" TEXT
);

INSERT INTO helloworld_helloworldservice__new ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", "kind", "name", "versionNumber", "published")
SELECT "id" + ((SELECT COALESCE(MAX(id), 0) FROM core_service) + (SELECT COALESCE(MAX(id), 0) FROM helloworld_helloworldservice)), "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", 'helloworld', substr("name", 1, 30), '1.0', 1
FROM helloworld_helloworldservice;

DROP TABLE helloworld_helloworldtenant;

DROP TABLE helloworld_helloworldservice;

ALTER TABLE helloworld_helloworldservice__new RENAME TO helloworld_helloworldservice;

CREATE TABLE helloworld_helloworldtenant (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "created" TEXT NOT NULL,
    "updated" TEXT NOT NULL,
    "enacted" TEXT,
    "policed" TEXT,
    "backend_register" TEXT DEFAULT '{}',
    "backend_status" TEXT NOT NULL DEFAULT '0 - Provisioning in progress',
    "deleted" BOOLEAN NOT NULL DEFAULT 0,
    "write_protect" BOOLEAN NOT NULL DEFAULT 0,
    "lazy_blocked" BOOLEAN NOT NULL DEFAULT 0,
    "no_sync" BOOLEAN NOT NULL DEFAULT 0,
    "row_version" INTEGER NOT NULL DEFAULT 1,
    "enacted_version" INTEGER NOT NULL DEFAULT 0,
    "policed_version" INTEGER NOT NULL DEFAULT 0,
    "kind" TEXT NOT NULL DEFAULT 'helloworld',
    "subscriber_service_id" INTEGER REFERENCES core_service (id),
    "subscriber_tenant_id" INTEGER REFERENCES core_tenant (id),
    "subscriber_user_id" INTEGER REFERENCES core_user (id),
    "service_specific_id" TEXT,
    "service_specific_attribute" TEXT,
    "connect_method" TEXT NOT NULL DEFAULT 'na',
    "name" TEXT NOT NULL,
    "provider_service_id" INTEGER NOT NULL REFERENCES helloworld_helloworldservice (id),
    "display_message" TEXT NOT NULL DEFAULT 'Hello World!',
    "port" INTEGER CHECK ("port" >= 0),
    "pid" INTEGER
);

INSERT INTO helloworld_helloworldtenant ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "connect_method", "name", "provider_service_id", "display_message", "port", "pid")
SELECT "id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "connect_method", "name", "provider_service_id", "display_message", "port", "pid" FROM xos_hw_tenant;

DROP TABLE xos_hw_tenant;

INSERT INTO core_service ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", "kind", "name", "versionNumber", "published")
SELECT "id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", "kind", "name", "versionNumber", "published" FROM helloworld_helloworldservice;

INSERT INTO core_tenant ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "provider_service_id", "connect_method")
SELECT "id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "provider_service_id", "connect_method" FROM helloworld_helloworldtenant;

CREATE UNIQUE INDEX helloworld_helloworldservice__name__uniq ON helloworld_helloworldservice ("name") WHERE NOT deleted;

CREATE INDEX helloworld_helloworldservice__pending__idx ON helloworld_helloworldservice ("id") WHERE row_version > enacted_version OR deleted;

CREATE INDEX helloworld_helloworldtenant__subscriber_service_id__idx ON helloworld_helloworldtenant ("subscriber_service_id");

CREATE INDEX helloworld_helloworldtenant__subscriber_tenant_id__idx ON helloworld_helloworldtenant ("subscriber_tenant_id");

CREATE INDEX helloworld_helloworldtenant__subscriber_user_id__idx ON helloworld_helloworldtenant ("subscriber_user_id");

CREATE UNIQUE INDEX helloworld_helloworldtenant__name__uniq ON helloworld_helloworldtenant ("name") WHERE NOT deleted;

CREATE INDEX helloworld_helloworldtenant__provider_service_id__idx ON helloworld_helloworldtenant ("provider_service_id");

CREATE INDEX helloworld_helloworldtenant__pending__idx ON helloworld_helloworldtenant ("id") WHERE row_version > enacted_version OR deleted;
