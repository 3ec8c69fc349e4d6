/* A FastCGI authorizer on libfcgi for tests/authorizer.rs.
 * Authenticator: grants alice/secret. Authorizer: grants user alice.
 * Access checker: denies requests with an X-Deny header. A grant sends
 * Variable-ROLE_SEEN and a plain header; a denial sends Status 403, a header
 * and a body (which must not reach the client). X-Redirect: asks for a
 * Location (not allowed). */
#include <fcgiapp.h>
#include <string.h>

int main(void)
{
    FCGX_Stream *in, *out, *err;
    FCGX_ParamArray envp;

    while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
        const char *role = FCGX_GetParam("FCGI_APACHE_ROLE", envp);
        const char *user = FCGX_GetParam("REMOTE_USER", envp);
        const char *pass = FCGX_GetParam("REMOTE_PASSWD", envp);
        int ok;
        if (!role) role = "none";
        if (FCGX_GetParam("HTTP_X_REDIRECT", envp)) {
            FCGX_FPrintF(out, "Status: 200\r\nLocation: /elsewhere\r\n\r\n");
            continue;
        }
        if (strcmp(role, "ACCESS_CHECKER") == 0)
            ok = FCGX_GetParam("HTTP_X_DENY", envp) == NULL;
        else if (strcmp(role, "AUTHENTICATOR") == 0)
            ok = user && pass && !strcmp(user, "alice") && !strcmp(pass, "secret");
        else
            ok = user && !strcmp(user, "alice");
        if (ok)
            FCGX_FPrintF(out, "Status: 200\r\nVariable-ROLE_SEEN_%s: yes\r\nPlain-Header: kept\r\n\r\n", role);
        else
            FCGX_FPrintF(out, "Status: 403\r\nX-Why: %s said no\r\n\r\nsecret body that must be discarded", role);
    }
    return 0;
}
