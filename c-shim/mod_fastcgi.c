/* mod_fastcgi_rs: the C face of the module.
 *
 * httpd finds modules by a C struct and a directive table; everything else is
 * Rust (src/). This file keeps the original's identity -- the struct is
 * `fastcgi_module` and the file is `mod_fastcgi.c` -- so `LoadModule
 * fastcgi_module ...`, `<IfModule mod_fastcgi.c>` and `<IfModule
 * fastcgi_module>` in existing configurations keep working. No logic here:
 * the table, the hooks, and wrappers over macros Rust cannot call.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "apr_buckets.h"
#include "apr_optional_hooks.h"
#include "mod_status.h"
#include "fastcgi_shim.h"

module AP_MODULE_DECLARE_DATA fastcgi_module;

static const char *raw_directive(cmd_parms *cmd, void *mconfig, const char *args)
{
    return fcgi_rs_directive(cmd, mconfig, (int)(apr_uintptr_t)cmd->info, args);
}

#define FCGI_CMD(name, which, where, help) \
    AP_INIT_RAW_ARGS(name, raw_directive, (void *)(apr_uintptr_t)(which), where, help)

static const command_rec fastcgi_cmds[] = {
    FCGI_CMD("FastCgiServer", FCGI_DIRECTIVE_SERVER, RSRC_CONF,
             "a fastcgi application path followed by options; started by the process manager"),
    FCGI_CMD("AppClass", FCGI_DIRECTIVE_SERVER, RSRC_CONF,
             "alias of FastCgiServer"),
    FCGI_CMD("FastCgiExternalServer", FCGI_DIRECTIVE_EXTERNAL_SERVER, RSRC_CONF,
             "a fastcgi path followed by -socket path | -host host:port, then options"),
    FCGI_CMD("ExternalAppClass", FCGI_DIRECTIVE_EXTERNAL_SERVER, RSRC_CONF,
             "alias of FastCgiExternalServer"),
    FCGI_CMD("FastCgiConfig", FCGI_DIRECTIVE_CONFIG, RSRC_CONF,
             "options for dynamic FastCGI applications (main server config only)"),
    FCGI_CMD("FCGIConfig", FCGI_DIRECTIVE_CONFIG, RSRC_CONF,
             "alias of FastCgiConfig"),
    FCGI_CMD("FastCgiWrapper", FCGI_DIRECTIVE_WRAPPER, RSRC_CONF,
             "On, Off or the path of a wrapper (suexec) that starts applications under other identities"),
    FCGI_CMD("FastCgiSuexec", FCGI_DIRECTIVE_WRAPPER, RSRC_CONF,
             "alias of FastCgiWrapper"),
    FCGI_CMD("FastCgiIpcDir", FCGI_DIRECTIVE_IPC_DIR, RSRC_CONF,
             "directory for the Unix sockets of FastCGI applications"),
    FCGI_CMD("FastCgiAuthenticator", FCGI_DIRECTIVE_AUTH + 0, ACCESS_CONF,
             "a fastcgi application path run in the authentication phase, then optionally -compat"),
    FCGI_CMD("FastCgiAuthenticatorAuthoritative", FCGI_DIRECTIVE_AUTH + 1, ACCESS_CONF,
             "Off lets other modules authenticate when the application denies (default On)"),
    FCGI_CMD("FastCgiAuthorizer", FCGI_DIRECTIVE_AUTH + 2, ACCESS_CONF,
             "a fastcgi application path run in the authorization phase, then optionally -compat"),
    FCGI_CMD("FastCgiAuthorizerAuthoritative", FCGI_DIRECTIVE_AUTH + 3, ACCESS_CONF,
             "Off lets other modules authorize when the application denies (default On)"),
    FCGI_CMD("FastCgiAccessChecker", FCGI_DIRECTIVE_AUTH + 4, ACCESS_CONF,
             "a fastcgi application path run in the access check phase, then optionally -compat"),
    FCGI_CMD("FastCgiAccessCheckerAuthoritative", FCGI_DIRECTIVE_AUTH + 5, ACCESS_CONF,
             "Off lets other modules allow access when the application denies (default On)"),
    FCGI_CMD("FastCgiChunkedBodyMax", FCGI_DIRECTIVE_CHUNKED_BODY_MAX, RSRC_CONF,
             "largest chunked request body (bytes) spooled to learn its CONTENT_LENGTH"),
    FCGI_CMD("FastCgiResponseBuffer", FCGI_DIRECTIVE_RESPONSE_BUFFER, RSRC_CONF,
             "response bytes kept in memory per request for a client slower than the application (0 paces the application)"),
    FCGI_CMD("FastCgiResponseSpoolMax", FCGI_DIRECTIVE_RESPONSE_SPOOL_MAX, RSRC_CONF,
             "most response bytes held per request for a slow client, memory and temporary file together"),
    FCGI_CMD("FastCgiScoreboard", FCGI_DIRECTIVE_SCOREBOARD, RSRC_CONF,
             "On, Off or the number of dynamic application slots of the traffic scoreboard (default 64)"),
    FCGI_CMD("FastCgiLogNotes", FCGI_DIRECTIVE_LOG_NOTES, RSRC_CONF,
             "On sets the fastcgi-* request notes (endpoint, times) for the access log (default Off)"),
    FCGI_CMD("FastCgiRequestBuffering", FCGI_DIRECTIVE_REQUEST_BUFFERING, RSRC_CONF | ACCESS_CONF,
             "On (default) receives a request body whole before the application is asked; Off streams it"),
    FCGI_CMD("FastCgiRequestBuffer", FCGI_DIRECTIVE_REQUEST_BUFFER, RSRC_CONF,
             "request body bytes kept in memory while it is received (default 64K; the rest goes to a temporary file)"),
    FCGI_CMD("FastCgiRequestSpoolMax", FCGI_DIRECTIVE_REQUEST_SPOOL_MAX, RSRC_CONF,
             "largest request body received whole first (default 64M); larger ones are streamed"),
    FCGI_CMD("FastCgiSpoolBudget", FCGI_DIRECTIVE_SPOOL_BUDGET, RSRC_CONF,
             "most bytes all children keep in temporary files together (default auto: a quarter of the free space, at most 4G)"),
    FCGI_CMD("FastCgiTempDir", FCGI_DIRECTIVE_TEMP_DIR, RSRC_CONF,
             "directory of the temporary files of request bodies and held responses (default $TMPDIR or /tmp)"),
    {NULL}
};

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return fcgi_rs_pre_config(pconf, plog, ptemp);
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    return fcgi_rs_post_config(pconf, plog, ptemp, s);
}

static void *create_dir_config(apr_pool_t *p, char *dir)
{
    return fcgi_rs_create_dir_config(p);
}

static void *merge_dir_config(apr_pool_t *p, void *base, void *add)
{
    return fcgi_rs_merge_dir_config(p, base, add);
}

static apr_status_t insert_network_bucket(conn_rec *c, apr_bucket_brigade *bb, apr_socket_t *socket)
{
    return fcgi_rs_insert_network_bucket(c, bb, socket) ? APR_SUCCESS : AP_DECLINED;
}

static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    return fcgi_rs_check_config(pconf, plog, ptemp, s);
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(fcgi_rs_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(fcgi_rs_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(fcgi_rs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* First, so that a configured authorizer decides before mod_auth_basic
     * and mod_authz_core (they decline where none is configured). */
    ap_hook_check_user_id(fcgi_rs_check_user_id, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_auth_checker(fcgi_rs_auth_checker, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_access_checker(fcgi_rs_access_checker, NULL, NULL, APR_HOOK_MIDDLE);
    /* The client socket's bucket (src/apache/client_socket.rs): before the
     * core's, which runs APR_HOOK_REALLY_LAST. */
    ap_hook_insert_network_bucket(insert_network_bucket, NULL, NULL, APR_HOOK_MIDDLE);
    /* A FastCGI section on mod_status's page, when it is loaded. */
    APR_OPTIONAL_HOOK(ap, status_hook, fcgi_rs_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(fastcgi) = {
    STANDARD20_MODULE_STUFF,
    create_dir_config, /* authorizers and request buffering */
    merge_dir_config,  /* authorizers do not merge, as in the original */
    NULL,           /* definitions are global, as in the original */
    NULL,
    fastcgi_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};

/* ---- wrappers Rust calls ---- */

void fcgi_shim_log_r(const request_rec *r, int level, apr_status_t status, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, status, r, "%s", msg);
}

void fcgi_shim_log_s(const server_rec *s, int level, apr_status_t status, const char *msg)
{
    ap_log_error(APLOG_MARK, level, status, s, "%s", msg);
}

int fcgi_shim_module_index(void)
{
    return APLOG_MODULE_INDEX;
}

void fcgi_shim_queue(request_rec *r, apr_bucket_brigade *bb, const char *data, apr_size_t len)
{
    /* Transient: the caller passes the brigade before the data changes;
     * filters that keep it set it aside (copy). */
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(data, len, r->connection->bucket_alloc));
}

long fcgi_shim_read_body(request_rec *r, apr_bucket_brigade *bb, char *buf, apr_size_t len, int block)
{
    /* ap_get_client_block with a brigade kept across calls and a choice of
     * blocking: >0 bytes, 0 at the end of the body, -1 on error, -2 when a
     * non-blocking read finds nothing yet. */
    apr_status_t rv;

    if (r->remaining < 0 || (!r->read_chunked && r->remaining == 0)) {
        return 0;
    }
    rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                        block ? APR_BLOCK_READ : APR_NONBLOCK_READ, len);
    if (!block && (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(bb)))) {
        apr_brigade_cleanup(bb);
        return -2;
    }
    if (rv != APR_SUCCESS || APR_BRIGADE_EMPTY(bb)) {
        if (rv != AP_FILTER_ERROR) {
            r->connection->keepalive = AP_CONN_CLOSE;
        }
        apr_brigade_cleanup(bb);
        return -1;
    }
    if (APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
        r->remaining = r->read_chunked ? -1 : 0;
    }
    rv = apr_brigade_flatten(bb, buf, &len);
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS) {
        return -1;
    }
    r->read_length += len;
    return (long)len;
}

apr_status_t fcgi_shim_pass(request_rec *r, apr_bucket_brigade *bb, int flush)
{
    apr_status_t rv;

    if (flush) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(r->connection->bucket_alloc));
    }
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv == APR_SUCCESS && r->connection->aborted) {
        rv = APR_ECONNABORTED;
    }
    return rv;
}

apr_status_t fcgi_shim_send_broken(request_rec *r, apr_bucket_brigade *bb)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_status_t rv;

    /* An error bucket makes the HTTP/1.1 chunk filter leave out the last
     * chunk and the connection close: the client sees a truncated reply
     * instead of a complete-looking one. */
    r->connection->keepalive = AP_CONN_CLOSE;
    r->no_cache = 1;
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv;
}

/* A response that has no body for the client (HEAD, 204, 304) to a main
 * request that sent none: ends it now, with the brigade httpd's
 * ap_finalize_request_protocol would pass after the handler (EOS alone;
 * its ap_discard_request_body has nothing to read), so that its head
 * reaches the connection's filters before the handler returns; httpd's
 * HTTP_HEADER filter eats any flush that comes before. 1 when it did. */
int fcgi_shim_end_bodiless(request_rec *r, apr_bucket_brigade *bb)
{
    apr_status_t rv;

    if (r->main || r->eos_sent || !(r->header_only || AP_STATUS_IS_HEADER_ONLY(r->status))
        || ap_request_has_body(r)) {
        return 0;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv == APR_SUCCESS && !r->connection->aborted;
}

/* A flush below the request's filters (as httpd passes its EOR bucket),
 * for output that no request filter holds any more. */
apr_status_t fcgi_shim_flush_connection(request_rec *r, apr_bucket_brigade *bb)
{
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->connection->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv;
}

void *fcgi_shim_dir_config(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &fastcgi_module);
}

void *fcgi_shim_conn_state(const conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &fastcgi_module);
}

void fcgi_shim_set_conn_state(conn_rec *c, void *state)
{
    ap_set_module_config(c->conn_config, &fastcgi_module, state);
}

void fcgi_shim_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b)
{
    APR_BRIGADE_INSERT_TAIL(bb, b);
}

void fcgi_shim_bucket_insert_after(apr_bucket *a, apr_bucket *b)
{
    APR_BUCKET_INSERT_AFTER(a, b);
}

void fcgi_shim_skip_protocol_filters(request_rec *r)
{
    ap_filter_t *f = r->output_filters;

    while (f && f->frec->ftype < AP_FTYPE_CONNECTION) {
        f = f->next;
    }
    r->output_filters = r->proto_output_filters = f;
}
