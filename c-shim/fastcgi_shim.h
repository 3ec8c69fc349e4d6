/* The seam between the C shim and the Rust staticlib.
 *
 * fcgi_rs_*   are defined in Rust (src/apache/) and called by the shim.
 * fcgi_shim_* are defined in the shim and called by Rust: thin wrappers over
 *             httpd/APR macros and variadic loggers that bindgen cannot expose.
 */
#ifndef FASTCGI_SHIM_H
#define FASTCGI_SHIM_H

#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Which directive a cmd_parms belongs to (stored in command_rec.cmd_data). */
enum fcgi_directive {
    FCGI_DIRECTIVE_SERVER = 1,
    FCGI_DIRECTIVE_EXTERNAL_SERVER = 2,
    FCGI_DIRECTIVE_CONFIG = 3,
    FCGI_DIRECTIVE_IPC_DIR = 4,
    FCGI_DIRECTIVE_WRAPPER = 5,
    FCGI_DIRECTIVE_CHUNKED_BODY_MAX = 6,
    FCGI_DIRECTIVE_RESPONSE_BUFFER = 7,
    FCGI_DIRECTIVE_RESPONSE_SPOOL_MAX = 8,
    FCGI_DIRECTIVE_SCOREBOARD = 9,
    /* Per-directory authorizers: base + 2 * phase (+1 for ...Authoritative);
     * phase 0 authenticator, 1 authorizer, 2 access checker. */
    FCGI_DIRECTIVE_AUTH = 10,
    FCGI_DIRECTIVE_LOG_NOTES = 16,
    FCGI_DIRECTIVE_REQUEST_BUFFER = 17,
    FCGI_DIRECTIVE_REQUEST_SPOOL_MAX = 18,
    FCGI_DIRECTIVE_TEMP_DIR = 19,
    FCGI_DIRECTIVE_SPOOL_BUDGET = 21,
    /* Per directory, like the authorizers. */
    FCGI_DIRECTIVE_REQUEST_BUFFERING = 20
};

/* Rust side */
const char *fcgi_rs_directive(cmd_parms *cmd, void *dir_config, int which, const char *args);
void *fcgi_rs_create_dir_config(apr_pool_t *p);
void *fcgi_rs_merge_dir_config(apr_pool_t *p, void *base, void *add);
int fcgi_rs_check_user_id(request_rec *r);
int fcgi_rs_auth_checker(request_rec *r);
int fcgi_rs_access_checker(request_rec *r);
int fcgi_rs_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int fcgi_rs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
int fcgi_rs_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
int fcgi_rs_fixups(request_rec *r);
int fcgi_rs_handler(request_rec *r);
int fcgi_rs_status_hook(request_rec *r, int flags);
void fcgi_rs_child_init(apr_pool_t *pchild, server_rec *s);
/* Nonzero when it put the client socket's bucket into bb (else the core does). */
int fcgi_rs_insert_network_bucket(conn_rec *c, apr_bucket_brigade *bb, apr_socket_t *socket);

/* Shim side */
void fcgi_shim_log_r(const request_rec *r, int level, apr_status_t status, const char *msg);
void fcgi_shim_log_s(const server_rec *s, int level, apr_status_t status, const char *msg);
int fcgi_shim_module_index(void);
void fcgi_shim_queue(request_rec *r, apr_bucket_brigade *bb, const char *data, apr_size_t len);
apr_status_t fcgi_shim_pass(request_rec *r, apr_bucket_brigade *bb, int flush);
long fcgi_shim_read_body(request_rec *r, apr_bucket_brigade *bb, char *buf, apr_size_t len, int block);
apr_status_t fcgi_shim_send_broken(request_rec *r, apr_bucket_brigade *bb);
int fcgi_shim_end_bodiless(request_rec *r, apr_bucket_brigade *bb);
apr_status_t fcgi_shim_flush_connection(request_rec *r, apr_bucket_brigade *bb);
void fcgi_shim_skip_protocol_filters(request_rec *r);
void *fcgi_shim_dir_config(const request_rec *r);
void *fcgi_shim_conn_state(const conn_rec *c);
void fcgi_shim_set_conn_state(conn_rec *c, void *state);
void fcgi_shim_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b);
void fcgi_shim_bucket_insert_after(apr_bucket *a, apr_bucket *b);

#endif
