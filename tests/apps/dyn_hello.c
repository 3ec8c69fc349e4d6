/* A dynamic-mode libfcgi app (Debian's `AddHandler fastcgi-script .fcgi`
 * hello.fcgi): single-threaded, one request at a time, accepting on the
 * listening socket the process manager hands over as fd 0 (FCGX_Accept).
 * A query string "ms=N" makes it sleep N milliseconds before answering.
 * Answer: "Hello from libfcgi pid=N ppid=M\n". */
#include <fcgiapp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
    FCGX_Stream *in, *out, *err;
    FCGX_ParamArray envp;

    while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
        const char *qs = FCGX_GetParam("QUERY_STRING", envp);
        if (qs && strncmp(qs, "ms=", 3) == 0) {
            long ms = strtol(qs + 3, NULL, 10);
            if (ms > 0 && ms < 60000) {
                struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
            }
        }
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n\r\n"
                          "Hello from libfcgi pid=%ld ppid=%ld\n",
                     (long)getpid(), (long)getppid());
    }
    return 0;
}
