-- The HA1 values over the whole address as the Digest user name (`ha1b`,
-- H(user@domain:domain:password)), for HTTP Digest clients that send `user@domain`. NULL for
-- a password set before this migration, until it is next set.
ALTER TABLE accounts ADD COLUMN ha1b_md5 TEXT;
ALTER TABLE accounts ADD COLUMN ha1b_sha256 TEXT;
