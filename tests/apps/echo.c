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
 *   /whoami     "<name>\n", the name from $ECHO_NAME ("echo" when unset)
 *   /sleep?ms=N sleeps N milliseconds, then prints "slept=N\n"
 *   /stats      "connections=<C>\nrequests=<R>\npid=<pid>\n": connections
 *               accepted and requests served so far, this one included (a
 *               connection counts once however many requests it carries:
 *               libfcgi keeps it only when the web server set FCGI_KEEP_CONN)
 *   anything    reads the whole body and prints
 *                 length=<bytes read>
 *                 fnv1a64=<16 hex digits>
 *                 content_length=<CONTENT_LENGTH or <unset>>
 *                 method=<REQUEST_METHOD>
 *
 * With $ECHO_NAME set, every response also carries "X-Echo-Name: <name>".
 * With $ECHO_PROCS=N (N > 1) it forks N - 1 more processes after it listens,
 * all accepting on the same socket, as a pool of libfcgi programs behind one
 * FastCgiExternalServer is run (each one ends with its parent; /stats counts
 * per process).
 * With $ECHO_STALL=1 it accepts connections and reads whatever arrives but
 * never answers (a host that is up but hung); connections stay open until the
 * peer closes them.
 */
#include <fcgiapp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *param(FCGX_Request *req, const char *name, const char *dflt) {
    const char *v = FCGX_GetParam(name, req->envp);
    return v ? v : dflt;
}

static const char *echo_name;

/* The header block: Content-Type, X-Echo-Name when ECHO_NAME is set. */
static void headers(FCGX_Request *req, const char *type) {
    FCGX_FPrintF(req->out, "Content-Type: %s\r\n", type);
    if (echo_name)
        FCGX_FPrintF(req->out, "X-Echo-Name: %s\r\n", echo_name);
    FCGX_FPrintF(req->out, "\r\n");
}

/* ECHO_STALL=1: accept, read and drop, never write. */
static int stall(int lsock) {
    enum { MAXC = 1024 };
    static struct pollfd fds[MAXC + 1];
    static char junk[65536];
    int n = 1;
    fds[0].fd = lsock;
    fds[0].events = POLLIN;
    for (;;) {
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if ((fds[0].revents & POLLIN) && n <= MAXC) {
            int c = accept(lsock, NULL, NULL);
            if (c >= 0) {
                fds[n].fd = c;
                fds[n].events = POLLIN;
                fds[n].revents = 0;
                n++;
                fprintf(stderr, "echo: stall: accepted connection %d\n", n - 1);
                fflush(stderr);
            }
        }
        for (int i = 1; i < n; i++) {
            if (!fds[i].revents)
                continue;
            ssize_t r = read(fds[i].fd, junk, sizeof junk);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                close(fds[i].fd);
                fds[i] = fds[n - 1];
                n--;
                i--;
            }
        }
    }
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
    echo_name = getenv("ECHO_NAME");
    if (echo_name && !*echo_name)
        echo_name = NULL;
    const char *stall_env = getenv("ECHO_STALL");
    if (stall_env && strcmp(stall_env, "1") == 0) {
        fprintf(stderr, "echo: stalling on %s\n", argc == 2 ? argv[1] : "fd 0");
        fflush(stderr);
        return stall(sock);
    }
    const char *procs_env = getenv("ECHO_PROCS");
    long procs = procs_env ? strtol(procs_env, NULL, 10) : 1;
    for (long i = 1; i < procs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            break;
        }
        if (pid < 0) {
            perror("echo: fork");
            return 1;
        }
    }
    FCGX_Request req;
    if (FCGX_InitRequest(&req, sock, 0) != 0) {
        fprintf(stderr, "FCGX_InitRequest failed\n");
        return 1;
    }
    fprintf(stderr, "echo: listening on %s\n", argc == 2 ? argv[1] : "fd 0");
    fflush(stderr);

    static char buf[65536];
    unsigned long long connections = 0, requests = 0;
    ino_t last_conn = 0;
    while (FCGX_Accept_r(&req) >= 0) {
        /* A new connection is a new socket, and every socket has an inode
         * of its own: count the changes (works for TCP and Unix sockets). */
        struct stat st;
        if (fstat(req.ipcFd, &st) == 0 && (connections == 0 || st.st_ino != last_conn)) {
            connections++;
            last_conn = st.st_ino;
        }
        requests++;
        const char *path = param(&req, "PATH_INFO", "");
        const char *query = param(&req, "QUERY_STRING", "");
        if (strcmp(path, "/whoami") == 0) {
            headers(&req, "text/plain");
            FCGX_FPrintF(req.out, "%s\n", echo_name ? echo_name : "echo");
        } else if (strcmp(path, "/sleep") == 0) {
            const char *ms_s = strstr(query, "ms=");
            long ms = ms_s ? strtol(ms_s + 3, NULL, 10) : 0;
            if (ms > 0) {
                struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                    ;
            }
            headers(&req, "text/plain");
            FCGX_FPrintF(req.out, "slept=%ld\n", ms);
        } else if (strcmp(path, "/stats") == 0) {
            headers(&req, "text/plain");
            FCGX_FPrintF(req.out, "connections=%llu\nrequests=%llu\npid=%ld\n", connections, requests,
                         (long)getpid());
        } else if (strcmp(path, "/env") == 0) {
            headers(&req, "text/plain");
            for (char **e = req.envp; *e; e++)
                FCGX_FPrintF(req.out, "%s\n", *e);
        } else if (strcmp(path, "/bytes") == 0) {
            long n = strtol(query, NULL, 10);
            headers(&req, "application/octet-stream");
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
            headers(&req, "text/plain");
            FCGX_FPrintF(req.out,
                         "length=%llu\nfnv1a64=%016llx\ncontent_length=%s\nmethod=%s\n",
                         total, (unsigned long long)h, param(&req, "CONTENT_LENGTH", "<unset>"),
                         param(&req, "REQUEST_METHOD", ""));
        }
        FCGX_Finish_r(&req);
    }
    return 0;
}
