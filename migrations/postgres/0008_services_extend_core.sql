-- HelloWorld's models extend Service and Tenant (multi-table inheritance): written by hand from
-- the statements `xos makemigrations` generated, plus the data step they cannot know. Each existing
-- HelloWorld service and tenant gets a new id above every Service (Tenant) id, a Service (Tenant)
-- row with that id and kind `helloworld`; a tenant's `service` becomes its `provider_service`.

-- The new columns (defaults for the rows already there).
ALTER TABLE helloworld_helloworldservice ADD COLUMN "kind" VARCHAR(30) NOT NULL DEFAULT 'helloworld';
UPDATE helloworld_helloworldservice SET "name" = LEFT("name", 30);
ALTER TABLE helloworld_helloworldservice ALTER COLUMN "name" TYPE VARCHAR(30);
ALTER TABLE helloworld_helloworldservice ADD COLUMN "versionNumber" VARCHAR(30) NOT NULL DEFAULT '1.0';
ALTER TABLE helloworld_helloworldservice ALTER COLUMN "versionNumber" DROP DEFAULT;
ALTER TABLE helloworld_helloworldservice ADD COLUMN "published" BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE helloworld_helloworldservice ADD COLUMN "view_url" VARCHAR(1024);
ALTER TABLE helloworld_helloworldservice ADD COLUMN "icon_url" VARCHAR(1024);
ALTER TABLE helloworld_helloworldservice ADD COLUMN "public_key" TEXT;
ALTER TABLE helloworld_helloworldservice ADD COLUMN "private_key_fn" VARCHAR(1024);
ALTER TABLE helloworld_helloworldservice ADD COLUMN "service_specific_id" VARCHAR(30);
ALTER TABLE helloworld_helloworldservice ADD COLUMN "service_specific_attribute" TEXT;

ALTER TABLE helloworld_helloworldtenant ADD COLUMN "kind" VARCHAR(30) NOT NULL DEFAULT 'helloworld';
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "subscriber_service_id" BIGINT REFERENCES core_service (id);
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "subscriber_tenant_id" BIGINT REFERENCES core_tenant (id);
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "subscriber_user_id" BIGINT REFERENCES core_user (id);
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "service_specific_id" VARCHAR(30);
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "service_specific_attribute" TEXT;
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "connect_method" VARCHAR(30) NOT NULL DEFAULT 'na';
ALTER TABLE helloworld_helloworldtenant ADD COLUMN "provider_service_id" BIGINT;

-- New ids: services first (the tenants' new provider ids follow them), then tenants.
CREATE TEMPORARY TABLE xos_hw_offset ON COMMIT DROP AS
SELECT ((SELECT COALESCE(MAX(id), 0) FROM core_service) + (SELECT COALESCE(MAX(id), 0) FROM helloworld_helloworldservice)) AS s,
       ((SELECT COALESCE(MAX(id), 0) FROM core_tenant) + (SELECT COALESCE(MAX(id), 0) FROM helloworld_helloworldtenant)) AS t;
UPDATE helloworld_helloworldtenant SET "provider_service_id" = "service_id" + (SELECT s FROM xos_hw_offset);
ALTER TABLE helloworld_helloworldtenant DROP COLUMN "service_id";
UPDATE helloworld_helloworldservice SET "id" = "id" + (SELECT s FROM xos_hw_offset);
UPDATE helloworld_helloworldtenant SET "id" = "id" + (SELECT t FROM xos_hw_offset);

INSERT INTO core_service ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", "kind", "name", "versionNumber", "published")
SELECT "id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "description", "enabled", "kind", "name", "versionNumber", "published" FROM helloworld_helloworldservice;

INSERT INTO core_tenant ("id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "provider_service_id", "connect_method")
SELECT "id", "created", "updated", "enacted", "policed", "backend_register", "backend_status", "deleted", "write_protect", "lazy_blocked", "no_sync", "row_version", "enacted_version", "policed_version", "kind", "provider_service_id", "connect_method" FROM helloworld_helloworldtenant;

-- Ids come from the parents' sequences from now on.
SELECT setval(pg_get_serial_sequence('core_service', 'id'), (SELECT MAX(id) FROM core_service));
SELECT setval(pg_get_serial_sequence('core_tenant', 'id'), (SELECT MAX(id) FROM core_tenant));

ALTER TABLE helloworld_helloworldtenant ALTER COLUMN "provider_service_id" SET NOT NULL;
ALTER TABLE helloworld_helloworldtenant ADD FOREIGN KEY ("provider_service_id") REFERENCES helloworld_helloworldservice (id);

CREATE INDEX helloworld_helloworldtenant__subscriber_service_id__idx ON helloworld_helloworldtenant ("subscriber_service_id");
CREATE INDEX helloworld_helloworldtenant__subscriber_tenant_id__idx ON helloworld_helloworldtenant ("subscriber_tenant_id");
CREATE INDEX helloworld_helloworldtenant__subscriber_user_id__idx ON helloworld_helloworldtenant ("subscriber_user_id");
CREATE INDEX helloworld_helloworldtenant__provider_service_id__idx ON helloworld_helloworldtenant ("provider_service_id");
