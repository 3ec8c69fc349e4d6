/* The benchmark's backend: one libfcgi program that both gateways talk to.
 *   GET  /small  13 bytes   GET /mid or ?mid  64 KiB   GET /big or ?big  1 MiB
 *   POST  the body back
 * Usage: app SOCKET_PATH NPROC  (forks NPROC processes accepting on one socket)
 *        app                    (a process manager's child: the listening
 *                                socket is fd 0, as mod_fcgid and FastCgiServer give it)
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char big[1 << 20];

static void serve(int sock)
{
    FCGX_Request req;
    char buf[65536];

    FCGX_InitRequest(&req, sock, 0);
    while (FCGX_Accept_r(&req) >= 0) {
        /* Route on the URI: the two gateways set PATH_INFO differently.
         * Every branch reads FCGI_STDIN to its end: libfcgi closes a
         * connection whose input was not read to the end, FCGI_KEEP_CONN or
         * not, so GETs would never reuse a connection. */
        const char *path = FCGX_GetParam("REQUEST_URI", req.envp);
        const char *method = FCGX_GetParam("REQUEST_METHOD", req.envp);
        if (!path) path = "";
        size_t plen = strlen(path);
        if (method && strcmp(method, "POST") == 0) {
            const char *cl = FCGX_GetParam("CONTENT_LENGTH", req.envp);
            FCGX_FPrintF(req.out, "Content-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n", cl ? cl : "0");
            int n;
            while ((n = FCGX_GetStr(buf, sizeof buf, req.in)) > 0)
                FCGX_PutStr(buf, n, req.out);
        } else if (FCGX_GetStr(buf, sizeof buf, req.in) > 0) {
            /* A GET with a body: none is expected. */
            FCGX_PutS("Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nunexpected body\n", req.out);
        } else if (plen >= 4 && (strcmp(path + plen - 3, "big") == 0 || strcmp(path + plen - 3, "mid") == 0) &&
                   (path[plen - 4] == '/' || path[plen - 4] == '?')) {
            int len = path[plen - 3] == 'b' ? (int)sizeof big : 64 * 1024;
            FCGX_FPrintF(req.out, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len);
            FCGX_PutStr(big, len, req.out);
        } else {
            FCGX_PutS("Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n", req.out);
        }
        FCGX_Finish_r(&req);
    }
}

int main(int argc, char **argv)
{
    memset(big, 'x', sizeof big);
    FCGX_Init();
    if (argc == 1) {
        serve(0);
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s [SOCKET NPROC]\n", argv[0]);
        return 2;
    }
    umask(0);
    int sock = FCGX_OpenSocket(argv[1], 128);
    if (sock < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }
    int n = atoi(argv[2]);
    for (int i = 1; i < n; i++) {
        if (fork() == 0) {
            serve(sock);
            return 0;
        }
    }
    serve(sock);
    return 0;
}
