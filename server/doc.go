// Package server is dypegraph's ComfyUI-compatible HTTP and websocket API: the routes of
// ComfyUI's server.py (each also under /api), a durable prompt queue and history in an
// embedded SQLite database, the prompt worker, the websocket fan-out of execution events and
// previews, and the files routes (/view, /upload/image, /upload/mask) confined to the input,
// output and temp folders. For the official frontend it also serves ComfyUI's single-user user
// data (/users, /settings, /userdata, confined to data-dir/user/default), its start-up routes
// (/i18n, /workflow_templates, /experiment/models, /view_metadata ...) and /internal/* (logs,
// folder paths, file lists).
//
// It owns: request parsing and validation responses (through package graph), the queue and
// history store, event routing to websocket clients, and file access for clients. It must not
// run models or nodes itself: it hands each prompt to an executor.Executor, one at a time, and
// forwards the events the executor reports.
//
// # Durability
//
// A 200 from POST /prompt means the prompt is committed to data-dir/dypegraph.db (SQLite in
// WAL mode with synchronous=FULL: fsynced before the answer, so it survives kill -9 and power
// loss). History entries are written in the same transaction that removes the prompt from the
// queue, and are capped (Config.MaxHistory, oldest removed first). On start:
//
//   - pending prompts run, in their order (number, then insertion);
//   - a prompt that was running when the previous process died gets a history entry marked
//     interrupted (status_str "error" with an execution_interrupted message) and is queued
//     again, once; if the process dies again while running it, it is recorded in history as
//     failed (an execution_error message with exception_type "ServerCrash") and not retried;
//   - a prompt stopped by a graceful Shutdown is put back in the queue without counting as an
//     attempt.
//
// Secrets in extra_data (auth_token_comfy_org, api_key_comfy_org) are kept in memory only: a
// prompt restored after a restart runs without them.
//
// # Security defaults
//
// The command listens on 127.0.0.1. Browser requests pass ComfyUI's Host/Origin guard (a
// cross-site fetch, or an Origin that differs from a loopback Host, gets 403) unless
// Config.CORSOrigin is set. With Config.AuthToken every route requires
// "Authorization: Bearer <token>" or ?token=<token>, compared in constant time; a valid
// ?token= sets an HttpOnly, SameSite=Strict cookie that authorizes that browser's later requests
// and websocket (open the web UI as /?token=<token>).
// Request bodies are limited to Config.MaxUploadSize. Files are only reached through os.Root
// handles on their folders, so "..", absolute paths and symlinks cannot escape; HTML, JS, CSS,
// SVG and XML are served as downloads with X-Content-Type-Options: nosniff.
//
// # Websocket
//
// Each client has a bounded send queue. Progress and preview frames are dropped when it is
// half full; a client whose queue fills with messages that must not be lost (execution
// events, executing, executed, status) is disconnected, so a slow or dead client never blocks
// execution or the other clients. Pings keep connections alive and writes have deadlines. A
// reconnect with the same clientId replaces the registration; the old connection's cleanup
// never removes the new one.
package server
