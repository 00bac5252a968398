"""Versioned schema. Each entry moves the database one version up; never edit a shipped entry."""

from __future__ import annotations

# PRAGMA user_version holds the number of entries applied. Append only.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema: tokens, settings, request log, jobs, characters.
    """
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT,
        access_token TEXT NOT NULL,
        session_token TEXT,
        refresh_token TEXT,
        is_active INTEGER NOT NULL DEFAULT 1,
        remark TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX tokens_email ON tokens(email) WHERE email IS NOT NULL;
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE request_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        duration_ms REAL NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE characters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_id INTEGER,
        cameo_id TEXT NOT NULL,
        character_id TEXT,
        username TEXT,
        display_name TEXT,
        created_at REAL NOT NULL
    );
    """,
    # 2: the token pool's lifecycle, counters and limits; the job engine's progress and result;
    # request-log details; admin sessions.
    """
    ALTER TABLE tokens ADD COLUMN client_id TEXT;
    ALTER TABLE tokens ADD COLUMN at_expires REAL;
    ALTER TABLE tokens ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
    ALTER TABLE tokens ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN status_at REAL;
    ALTER TABLE tokens ADD COLUMN cooldown_until REAL;
    ALTER TABLE tokens ADD COLUMN cooldown_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN cooldown_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN quota_remaining INTEGER;
    ALTER TABLE tokens ADD COLUMN quota_resets_at REAL;
    ALTER TABLE tokens ADD COLUMN plan_type TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN plan_title TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN subscription_end TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN sora2_supported INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN sora2_invite_code TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN sora2_redeemed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN sora2_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN username TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN proxy TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN image_enabled INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE tokens ADD COLUMN video_enabled INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE tokens ADD COLUMN image_concurrency INTEGER;
    ALTER TABLE tokens ADD COLUMN video_concurrency INTEGER;
    ALTER TABLE tokens ADD COLUMN image_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN video_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN error_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN consecutive_errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN last_used_at REAL;
    ALTER TABLE tokens ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN last_error_at REAL;
    ALTER TABLE tokens ADD COLUMN updated_at REAL;
    UPDATE tokens SET status = CASE WHEN is_active THEN 'active' ELSE 'disabled' END;

    ALTER TABLE jobs ADD COLUMN api TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE jobs ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN progress REAL NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN stage TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN token_id INTEGER;
    ALTER TABLE jobs ADD COLUMN upstream_task_id TEXT;
    ALTER TABLE jobs ADD COLUMN state TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN result TEXT;
    ALTER TABLE jobs ADD COLUMN error_code TEXT;
    ALTER TABLE jobs ADD COLUMN error_message TEXT;
    ALTER TABLE jobs ADD COLUMN remixed_from TEXT;
    ALTER TABLE jobs ADD COLUMN started_at REAL;
    ALTER TABLE jobs ADD COLUMN completed_at REAL;
    ALTER TABLE jobs ADD COLUMN updated_at REAL;
    CREATE INDEX jobs_status ON jobs(status);
    CREATE INDEX jobs_created ON jobs(created_at);

    ALTER TABLE request_logs ADD COLUMN key_hint TEXT NOT NULL DEFAULT '';
    ALTER TABLE request_logs ADD COLUMN model TEXT NOT NULL DEFAULT '';
    ALTER TABLE request_logs ADD COLUMN token_id INTEGER;
    ALTER TABLE request_logs ADD COLUMN job_id TEXT;
    ALTER TABLE request_logs ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
    ALTER TABLE request_logs ADD COLUMN client TEXT NOT NULL DEFAULT '';
    CREATE INDEX request_logs_ts ON request_logs(ts);

    ALTER TABLE characters ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
    ALTER TABLE characters ADD COLUMN job_id TEXT;
    ALTER TABLE characters ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE admin_sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        client TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: a request-log row can stand for several identical calls (successful model listings,
    # which chat UIs repeat on every page load, are folded into one row per flush).
    """
    ALTER TABLE request_logs ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    """,
    # 4: a failed refresh is recorded apart from the status: the token serves on while its
    # access token lives.
    """
    ALTER TABLE tokens ADD COLUMN refresh_error TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN refresh_error_at REAL;
    UPDATE tokens SET refresh_error = status_reason, refresh_error_at = status_at
        WHERE status_reason LIKE 'Refresh failed: %';
    UPDATE tokens
        SET status = 'active', status_reason = '', status_at = CAST(strftime('%s', 'now') AS REAL)
        WHERE status = 'expired' AND status_reason LIKE 'Refresh failed: %'
        AND at_expires > CAST(strftime('%s', 'now') AS REAL);
    """,
    # 5: bounded-cost stats and lists. job_counts holds the number of jobs per
    # (status, kind) and request_log_count the request-log rows and errors, kept exact by triggers in the
    # same transaction as the change, so the stats read a few rows instead of counting every
    # job and log row; jobs(created_at, status, kind)
    # covers "today"; jobs(status, created_at) and jobs(kind, created_at, id) serve the job
    # lists (the first replaces jobs(status), its prefix);
    # characters(token_id) serves the panel's per-token list, characters(deleted, created_at)
    # retention.
    """
    CREATE TABLE job_counts (
        status TEXT NOT NULL,
        kind TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (status, kind)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (status, kind, n) SELECT status, kind, COUNT(*) FROM jobs GROUP BY 1, 2;
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (status, kind, n) VALUES (NEW.status, NEW.kind, 1)
            ON CONFLICT (status, kind) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1 WHERE status = OLD.status AND kind = OLD.kind;
    END;
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF status, kind ON jobs
        WHEN OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind BEGIN
        UPDATE job_counts SET n = n - 1 WHERE status = OLD.status AND kind = OLD.kind;
        INSERT INTO job_counts (status, kind, n) VALUES (NEW.status, NEW.kind, 1)
            ON CONFLICT (status, kind) DO UPDATE SET n = n + 1;
    END;
    CREATE TABLE request_log_count (n INTEGER NOT NULL, errors INTEGER NOT NULL);
    INSERT INTO request_log_count (n, errors)
        SELECT COUNT(*), COALESCE(SUM(status >= 400), 0) FROM request_logs;
    CREATE TRIGGER request_logs_count_insert AFTER INSERT ON request_logs BEGIN
        UPDATE request_log_count SET n = n + 1, errors = errors + (NEW.status >= 400);
    END;
    CREATE TRIGGER request_logs_count_delete AFTER DELETE ON request_logs BEGIN
        UPDATE request_log_count SET n = n - 1, errors = errors - (OLD.status >= 400);
    END;
    DROP INDEX IF EXISTS jobs_status;
    DROP INDEX IF EXISTS jobs_created;
    CREATE INDEX jobs_created ON jobs(created_at, status, kind);
    CREATE INDEX jobs_status_created ON jobs(status, created_at);
    CREATE INDEX jobs_kind_created ON jobs(kind, created_at, id);
    CREATE INDEX characters_token ON characters(token_id);
    CREATE INDEX characters_deleted ON characters(deleted, created_at);
    """,
    # 6: jobs are an explicit state machine: `phase` is the step a restart resumes from, and
    # `cleanup` lists the upstream side effects (temporary character, published post) still to
    # undo. Active rows take their phase from the old state JSON.
    """
    ALTER TABLE jobs ADD COLUMN phase TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN cleanup TEXT;
    UPDATE jobs SET phase = CASE
        WHEN status IN ('completed', 'failed', 'cancelled') THEN status
        WHEN NOT json_valid(state) THEN 'submitting'
        WHEN json_extract(state, '$.phase') = 'poll' THEN 'polling'
        WHEN json_extract(state, '$.phase') IS NOT NULL THEN 'submitting'
        ELSE 'queued' END;
    UPDATE jobs SET status = 'in_progress' WHERE status = 'queued' AND phase != 'queued';
    CREATE INDEX jobs_phase ON jobs(phase);
    CREATE INDEX jobs_cleanup ON jobs(id) WHERE cleanup IS NOT NULL;
    """,
    # 7: accounts of every provider live in the tokens table: which provider, the base URL its
    # SDK takes, the upstream models the account reported at onboarding (served_models, JSON) and
    # the admin's restriction of them (models, JSON; '' = all served). Sora rows keep the defaults.
    """
    ALTER TABLE tokens ADD COLUMN provider TEXT NOT NULL DEFAULT 'sora';
    ALTER TABLE tokens ADD COLUMN base_url TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN served_models TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN models TEXT NOT NULL DEFAULT '';
    CREATE INDEX tokens_provider ON tokens(provider);
    """,
    # 8: API keys and usage. api_keys holds each key's SHA-256 (never the key) and its
    # settings; every job records the key that created it, its provider and what it measures
    # (video seconds, images, the upstream's own usage JSON). `usage` is a ledger written by a
    # trigger when a job reaches a final status: it outlives the job row, so deleting a job (or
    # retention pruning it) cannot give a key its daily allowance back.
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        key_hint TEXT NOT NULL,
        webhook_secret TEXT NOT NULL,
        models TEXT,
        expires_at REAL,
        enabled INTEGER NOT NULL DEFAULT 1,
        limits TEXT NOT NULL DEFAULT '{}',
        webhook_urls TEXT NOT NULL DEFAULT '[]',
        progress_format TEXT,
        content_format TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN key_id INTEGER;
    ALTER TABLE jobs ADD COLUMN provider TEXT NOT NULL DEFAULT 'sora';
    ALTER TABLE jobs ADD COLUMN video_seconds REAL NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN images INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN upstream_usage TEXT;
    CREATE INDEX jobs_key_kind_created ON jobs(key_id, kind, created_at, id)
        WHERE key_id IS NOT NULL;
    CREATE INDEX jobs_key_status ON jobs(key_id, status) WHERE key_id IS NOT NULL;
    CREATE TABLE usage (
        job_id TEXT PRIMARY KEY,
        key_id INTEGER,
        provider TEXT NOT NULL,
        token_id INTEGER,
        model TEXT NOT NULL,
        kind TEXT NOT NULL,
        video_seconds REAL NOT NULL,
        images INTEGER NOT NULL,
        upstream_usage TEXT,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL NOT NULL
    );
    CREATE INDEX usage_key_finished ON usage(key_id, finished_at);
    CREATE INDEX usage_finished ON usage(finished_at);
    CREATE TRIGGER jobs_usage AFTER UPDATE OF status ON jobs
        WHEN NEW.status IN ('completed', 'failed', 'cancelled')
        AND OLD.status IS NOT NEW.status BEGIN
        INSERT OR REPLACE INTO usage (job_id, key_id, provider, token_id, model, kind,
            video_seconds, images, upstream_usage, state, created_at, finished_at)
        VALUES (NEW.id, NEW.key_id, NEW.provider, NEW.token_id, NEW.model, NEW.kind,
            NEW.video_seconds, NEW.images, NEW.upstream_usage, NEW.status, NEW.created_at,
            COALESCE(NEW.completed_at, NEW.updated_at, NEW.created_at));
    END;
    """,
    # 9: webhooks. A job may name its own webhook_url; webhook_deliveries is the
    # outbox. The trigger enqueues one delivery per destination (the key's URLs and the job's own)
    # in the very UPDATE that makes a job final, so no crash can lose an event between the two.
    # The message id (webhook-id) is fixed here and kept by every retry; secrets are never copied
    # into the outbox (the sender reads the key's, or the bootstrap one, when it signs).
    """
    ALTER TABLE jobs ADD COLUMN webhook_url TEXT;
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        key_id INTEGER,
        url TEXT NOT NULL,
        event TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_status INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        next_at REAL,
        last_at REAL,
        delivered_at REAL
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_key ON webhook_deliveries(key_id, created_at);
    CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created_at);
    CREATE TRIGGER jobs_webhooks AFTER UPDATE OF status ON jobs
        WHEN NEW.status IN ('completed', 'failed', 'cancelled')
        AND OLD.status IS NOT NEW.status AND NEW.kind IN ('video', 'image') BEGIN
        INSERT INTO webhook_deliveries (id, job_id, key_id, url, event, created_at, next_at)
        SELECT 'msg_' || lower(hex(randomblob(16))), NEW.id, NEW.key_id, dest.url,
            NEW.kind || '.' || NEW.status,
            (julianday('now') - 2440587.5) * 86400.0, (julianday('now') - 2440587.5) * 86400.0
        FROM (
            SELECT DISTINCT url FROM (
                SELECT json_each.value AS url FROM api_keys, json_each(api_keys.webhook_urls)
                WHERE api_keys.id = NEW.key_id
                UNION ALL SELECT NEW.webhook_url WHERE NEW.webhook_url IS NOT NULL
            )
        ) AS dest;
    END;
    """,
    # 10: job counts per (status, kind, provider, model) for GET /metrics, kept
    # exact by triggers like job_counts (5): a scrape reads a few rows, never the jobs table.
    """
    CREATE TABLE job_model_counts (
        status TEXT NOT NULL,
        kind TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (status, kind, provider, model)
    ) WITHOUT ROWID;
    INSERT INTO job_model_counts (status, kind, provider, model, n)
        SELECT status, kind, provider, model, COUNT(*) FROM jobs GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER jobs_model_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_model_counts (status, kind, provider, model, n)
            VALUES (NEW.status, NEW.kind, NEW.provider, NEW.model, 1)
            ON CONFLICT (status, kind, provider, model) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER jobs_model_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_model_counts SET n = n - 1 WHERE status = OLD.status AND kind = OLD.kind
            AND provider = OLD.provider AND model = OLD.model;
    END;
    CREATE TRIGGER jobs_model_count_update AFTER UPDATE OF status, kind, provider, model ON jobs
        WHEN OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind
        OR OLD.provider IS NOT NEW.provider OR OLD.model IS NOT NEW.model BEGIN
        UPDATE job_model_counts SET n = n - 1 WHERE status = OLD.status AND kind = OLD.kind
            AND provider = OLD.provider AND model = OLD.model;
        INSERT INTO job_model_counts (status, kind, provider, model, n)
            VALUES (NEW.status, NEW.kind, NEW.provider, NEW.model, 1)
            ON CONFLICT (status, kind, provider, model) DO UPDATE SET n = n + 1;
    END;
    """,
)

CURRENT_VERSION = len(MIGRATIONS)
