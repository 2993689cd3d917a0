-- The servers that keep the hot reads in memory (`read_cache.rs`): each holds a lease that it
-- renews, and records the last invalidation ping it has processed. A writer acknowledges a
-- change only once every holder with a live lease has seen a ping sent after the change's
-- commit, or its lease has run out. Unlogged: after a crash of PostgreSQL every holder has lost
-- its listening connection and starts again.
CREATE SEQUENCE cache_pings;
CREATE SEQUENCE cache_holder_ids;
CREATE UNLOGGED TABLE cache_holders (
    id          BIGINT PRIMARY KEY DEFAULT nextval('cache_holder_ids'),
    seen        BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- Set by a writer that waited too long for this holder: its lease is not renewed again.
    fenced      BOOLEAN NOT NULL DEFAULT FALSE
);
