-- Run once by the postgres image on an empty data volume (mounted into
-- /docker-entrypoint-initdb.d). Each service owns its own database; both belong to the
-- POSTGRES_USER that runs this script. The services create their tables themselves
-- (their migrations are embedded in the binaries).
CREATE DATABASE asset;
CREATE DATABASE alert;
