/*
 * A FastCGI responder on libfcgi for the integration tests.
 *
 *   echo <socket path | host:port | :port>
 *   echo                      (FastCgiServer: the listening socket is fd 0)
 *
 * Listens with FCGX_OpenSocket (umask 0, so a Unix socket is 0777 and
 * Apache's www-data workers can connect), or accepts on fd 0, and serves
 * requests one after the other with FCGX_Accept_r, forever. By PATH_INFO:
 *   /env        every parameter received, "NAME=value" one per line
 *   /bytes?N    N bytes of a fixed pattern ("0123456789" repeated)
 *   anything    reads the whole body and prints
 *                 length=<bytes read>
 *                 fnv1a64=<16 hex digits>
 *                 content_length=<CONTENT_LENGTH or <unset>>
 *                 method=<REQUEST_METHOD>
 */
#include <fcgiapp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *param(FCGX_Request *req, const char *name, const char *dflt) {
    const char *v = FCGX_GetParam(name, req->envp);
    return v ? v : dflt;
}

int main(int argc, char **argv) {
    if (argc > 2) {
        fprintf(stderr, "usage: %s [socket path | host:port | :port]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    umask(0);
    if (FCGX_Init() != 0) {
        fprintf(stderr, "FCGX_Init failed\n");
        return 1;
    }
    int sock = argc == 2 ? FCGX_OpenSocket(argv[1], 64) : 0;
    if (sock < 0) {
        fprintf(stderr, "FCGX_OpenSocket(%s) failed\n", argv[1]);
        return 1;
    }
    FCGX_Request req;
    if (FCGX_InitRequest(&req, sock, 0) != 0) {
        fprintf(stderr, "FCGX_InitRequest failed\n");
        return 1;
    }
    fprintf(stderr, "echo: listening on %s\n", argc == 2 ? argv[1] : "fd 0");
    fflush(stderr);

    static char buf[65536];
    while (FCGX_Accept_r(&req) >= 0) {
        const char *path = param(&req, "PATH_INFO", "");
        const char *query = param(&req, "QUERY_STRING", "");
        if (strcmp(path, "/env") == 0) {
            FCGX_FPrintF(req.out, "Content-Type: text/plain\r\n\r\n");
            for (char **e = req.envp; *e; e++)
                FCGX_FPrintF(req.out, "%s\n", *e);
        } else if (strcmp(path, "/bytes") == 0) {
            long n = strtol(query, NULL, 10);
            FCGX_FPrintF(req.out, "Content-Type: application/octet-stream\r\n\r\n");
            static const char pat[] = "0123456789";
            for (long i = 0; i < n; i += 10) {
                long k = n - i < 10 ? n - i : 10;
                FCGX_PutStr(pat, (int)k, req.out);
            }
        } else {
            uint64_t h = 0xcbf29ce484222325ULL;
            unsigned long long total = 0;
            int n;
            while ((n = FCGX_GetStr(buf, sizeof buf, req.in)) > 0) {
                for (int i = 0; i < n; i++) {
                    h ^= (unsigned char)buf[i];
                    h *= 0x100000001b3ULL;
                }
                total += (unsigned long long)n;
            }
            FCGX_FPrintF(req.out,
                         "Content-Type: text/plain\r\n\r\n"
                         "length=%llu\nfnv1a64=%016llx\ncontent_length=%s\nmethod=%s\n",
                         total, (unsigned long long)h, param(&req, "CONTENT_LENGTH", "<unset>"),
                         param(&req, "REQUEST_METHOD", ""));
        }
        FCGX_Finish_r(&req);
    }
    return 0;
}
