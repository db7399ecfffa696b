package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver ("sqlite")
)

// The store keeps the queue and the history in one SQLite database (data-dir/dypegraph.db).
//
// Durability choice: WAL journal with synchronous=FULL. Every commit (a POST /prompt insert, a
// finished prompt's history row) is fsynced to the WAL before the call returns, so a 200 from
// POST /prompt survives a process crash, kill -9 and a power loss. synchronous=NORMAL would
// survive a process crash too but may lose the last commits on power loss; queue writes are
// few (one per prompt) so the fsync is not worth trading away.
//
// Writes go through one connection (SQLite has a single writer anyway; this also serialises
// the number counter), reads through a small pool of read-only connections that WAL lets run
// beside the writer.

const dbFileName = "dypegraph.db"

// Queue row states.
const (
	statePending = "pending"
	stateRunning = "running"
)

// migrations are applied in order; their index+1 is the schema version. Never edit a shipped
// migration: add a new one.
var migrations = []struct{ name, sql string }{
	{"queue, history and counters", `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE queue (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	prompt_id       TEXT NOT NULL UNIQUE,
	number          REAL NOT NULL,
	number_is_float INTEGER NOT NULL,
	prompt          TEXT NOT NULL,
	extra_data      TEXT NOT NULL,
	outputs         TEXT NOT NULL,
	state           TEXT NOT NULL DEFAULT 'pending',
	attempts        INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL
);
CREATE INDEX queue_order ON queue (number, seq);
CREATE TABLE history (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	prompt_id   TEXT NOT NULL UNIQUE,
	entry       TEXT NOT NULL,
	job         TEXT NOT NULL,
	finished_at INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('next_number', '0');
`},
}

// store is the SQLite queue and history store.
type store struct {
	w    *sql.DB // the writer: one connection
	r    *sql.DB // readers
	lock *dirLock
}

// storedItem is one queue row.
type storedItem struct {
	Seq           int64
	PromptID      string
	Number        float64
	NumberIsFloat bool
	Prompt        []byte // JSON object (validated prompt)
	Extra         []byte // JSON object (extra_data without secrets)
	Outputs       []string
	State         string
	Attempts      int
	CreatedAt     int64
}

// historyRow is one history entry as stored JSON.
type historyRow struct {
	PromptID string
	Entry    []byte
}

func dsn(path string, pragmas url.Values) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas.Encode()
}

// openStore opens (creating when needed) the database in dir, takes the data-dir lock so two
// servers never run one queue, and applies the migrations.
func openStore(ctx context.Context, dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dbFileName)
	wq := url.Values{}
	wq.Set("_busy_timeout", "10000")
	wq.Set("_journal_mode", "WAL")
	wq.Set("_synchronous", "FULL")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", dsn(path, wq))
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &store{w: w, lock: lock}
	if err := s.migrate(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", "10000")
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", dsn(path, rq))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s.r = r
	return s, nil
}

func (s *store) close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.lock != nil {
		s.lock.release()
		s.lock = nil
	}
	return errors.Join(errs...)
}

func (s *store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var version int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the database has schema version %d but this dypegraph knows only up to %d: it was written by a newer version", version, len(migrations))
	}
	for v := version + 1; v <= len(migrations); v++ {
		m := migrations[v-1]
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, v, m.name, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", v, m.name, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction and commits it.
func (s *store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// insertPrompt stores a new pending prompt. When assign is true the number comes from the
// persistent counter (negated for front), like ComfyUI's server.number; the counter advances
// either way. The row is committed when this returns nil.
func (s *store) insertPrompt(ctx context.Context, it *storedItem, assign, front bool) error {
	outputs, err := json.Marshal(it.Outputs)
	if err != nil {
		return fmt.Errorf("store prompt: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if assign {
			var next int64
			if err := tx.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_number'`).Scan(&next); err != nil {
				return fmt.Errorf("read prompt counter: %w", err)
			}
			n := next
			if front {
				n = -n
			}
			it.Number, it.NumberIsFloat = float64(n), false
			if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'next_number'`, fmt.Sprint(next+1)); err != nil {
				return fmt.Errorf("advance prompt counter: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO queue (prompt_id, number, number_is_float, prompt, extra_data, outputs, state, attempts, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)`,
			it.PromptID, it.Number, it.NumberIsFloat, string(it.Prompt), string(it.Extra), string(outputs), it.CreatedAt)
		if err != nil {
			return fmt.Errorf("store prompt %s: %w", it.PromptID, err)
		}
		it.Seq, err = res.LastInsertId()
		it.State = statePending
		return err
	})
}

// markRunning records that the worker started the prompt (one more attempt).
func (s *store) markRunning(ctx context.Context, seq int64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE queue SET state = 'running', attempts = attempts + 1 WHERE seq = ?`, seq)
	if err != nil {
		return fmt.Errorf("mark prompt running: %w", err)
	}
	return nil
}

// requeue puts a prompt stopped by a graceful shutdown back to pending without counting the
// attempt.
func (s *store) requeue(ctx context.Context, seq int64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE queue SET state = 'pending', attempts = MAX(attempts - 1, 0) WHERE seq = ?`, seq)
	if err != nil {
		return fmt.Errorf("requeue prompt: %w", err)
	}
	return nil
}

// finish writes the history entry of a finished prompt, removes its queue row and trims the
// history to maxHistory entries, in one transaction.
func (s *store) finish(ctx context.Context, seq int64, promptID string, entry, job []byte, maxHistory int) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := putHistory(ctx, tx, promptID, entry, job, maxHistory); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM queue WHERE seq = ?`, seq); err != nil {
			return fmt.Errorf("remove finished prompt from the queue: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write history of %s: %w", promptID, err)
	}
	return nil
}

// putHistory inserts (or replaces, moving it to the end) a history entry and trims the oldest.
func putHistory(ctx context.Context, tx *sql.Tx, promptID string, entry, job []byte, maxHistory int) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM history WHERE prompt_id = ?`, promptID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO history (prompt_id, entry, job, finished_at) VALUES (?, ?, ?, ?)`,
		promptID, string(entry), string(job), time.Now().UnixMilli()); err != nil {
		return err
	}
	if maxHistory > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM history WHERE seq <= (SELECT seq FROM history ORDER BY seq DESC LIMIT 1 OFFSET ?)`, maxHistory); err != nil {
			return fmt.Errorf("trim history: %w", err)
		}
	}
	return nil
}

// deletePending removes pending (not running) prompts by id; it reports how many went.
func (s *store) deletePending(ctx context.Context, ids []string) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `DELETE FROM queue WHERE prompt_id = ? AND state = 'pending'`, id)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete queued prompts: %w", err)
	}
	return n, nil
}

// clearPending removes every pending prompt (the running one stays).
func (s *store) clearPending(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM queue WHERE state = 'pending'`); err != nil {
		return fmt.Errorf("clear the queue: %w", err)
	}
	return nil
}

// loadQueue returns every queue row in run order.
func (s *store) loadQueue(ctx context.Context) ([]*storedItem, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT seq, prompt_id, number, number_is_float, prompt, extra_data, outputs, state, attempts, created_at
		FROM queue ORDER BY number, seq`)
	if err != nil {
		return nil, fmt.Errorf("load the queue: %w", err)
	}
	defer rows.Close()
	var items []*storedItem
	for rows.Next() {
		it := &storedItem{}
		var prompt, extra, outputs string
		if err := rows.Scan(&it.Seq, &it.PromptID, &it.Number, &it.NumberIsFloat, &prompt, &extra, &outputs, &it.State, &it.Attempts, &it.CreatedAt); err != nil {
			return nil, fmt.Errorf("load the queue: %w", err)
		}
		it.Prompt, it.Extra = []byte(prompt), []byte(extra)
		if err := json.Unmarshal([]byte(outputs), &it.Outputs); err != nil {
			return nil, fmt.Errorf("load the queue: prompt %s: bad outputs list: %w", it.PromptID, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load the queue: %w", err)
	}
	return items, nil
}

// recoverRunning applies the crash rule to rows left running by a previous process: on the
// first crash the prompt gets an "interrupted" history entry and goes back to pending (it keeps
// its attempt count); a prompt that was already re-queued once is recorded as failed and
// removed. entryFor builds the history entry and job summary of one row.
func (s *store) recoverRunning(ctx context.Context, maxHistory int, entryFor func(it *storedItem, failed bool) (entry, job []byte, err error)) (requeued, failed []string, err error) {
	items, err := s.loadQueue(ctx)
	if err != nil {
		return nil, nil, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for _, it := range items {
			if it.State != stateRunning {
				continue
			}
			give := it.Attempts > 1
			entry, job, err := entryFor(it, give)
			if err != nil {
				return err
			}
			if err := putHistory(ctx, tx, it.PromptID, entry, job, maxHistory); err != nil {
				return err
			}
			if give {
				if _, err := tx.ExecContext(ctx, `DELETE FROM queue WHERE seq = ?`, it.Seq); err != nil {
					return err
				}
				failed = append(failed, it.PromptID)
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE queue SET state = 'pending' WHERE seq = ?`, it.Seq); err != nil {
				return err
			}
			requeued = append(requeued, it.PromptID)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("recover prompts left running: %w", err)
	}
	return requeued, failed, nil
}

// historyPage returns entries oldest first, with ComfyUI's max_items/offset rules: a negative
// offset with maxItems set means "the newest maxItems"; maxItems < 0 means no limit.
func (s *store) historyPage(ctx context.Context, maxItems, offset int) ([]historyRow, error) {
	var rows *sql.Rows
	var err error
	switch {
	case maxItems == 0:
		return nil, nil
	case offset < 0 && maxItems > 0:
		rows, err = s.r.QueryContext(ctx, `SELECT prompt_id, entry FROM (SELECT seq, prompt_id, entry FROM history ORDER BY seq DESC LIMIT ?) ORDER BY seq`, maxItems)
	default:
		if offset < 0 {
			offset = 0
		}
		limit := int64(maxItems)
		if maxItems < 0 {
			limit = -1
		}
		rows, err = s.r.QueryContext(ctx, `SELECT prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?`, limit, offset)
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	var out []historyRow
	for rows.Next() {
		var h historyRow
		var entry string
		if err := rows.Scan(&h.PromptID, &entry); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		h.Entry = []byte(entry)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// historyGet returns one entry.
func (s *store) historyGet(ctx context.Context, id string) ([]byte, bool, error) {
	var entry string
	err := s.r.QueryRowContext(ctx, `SELECT entry FROM history WHERE prompt_id = ?`, id).Scan(&entry)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read history of %s: %w", id, err)
	}
	return []byte(entry), true, nil
}

// historyJobs returns the stored job summaries of every history entry, oldest first.
func (s *store) historyJobs(ctx context.Context) ([][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT job FROM history ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read job summaries: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var job string
		if err := rows.Scan(&job); err != nil {
			return nil, fmt.Errorf("read job summaries: %w", err)
		}
		out = append(out, []byte(job))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read job summaries: %w", err)
	}
	return out, nil
}

// historyDelete removes entries by id.
func (s *store) historyDelete(ctx context.Context, ids []string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM history WHERE prompt_id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete history entries: %w", err)
	}
	return nil
}

// historyClear removes every entry.
func (s *store) historyClear(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM history`); err != nil {
		return fmt.Errorf("clear history: %w", err)
	}
	return nil
}
