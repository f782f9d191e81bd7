-- Written by hand: the change log is an internal table, not a registry model.

CREATE TABLE xos_change (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "at" TEXT NOT NULL,
    "user_id" INTEGER,
    "actor" TEXT NOT NULL,
    "model" TEXT NOT NULL,
    "object_id" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "changes" TEXT NOT NULL
);

CREATE INDEX xos_change__object__idx ON xos_change ("model", "object_id");

CREATE INDEX xos_change__user__idx ON xos_change ("user_id");

CREATE INDEX xos_change__at__idx ON xos_change ("at");
