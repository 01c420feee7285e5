/* The machine's ceiling for hashing a tree of files, for bench/data_bench.py.

       cc -O2 -o hash_ceiling hash_ceiling.c -lcrypto
       hash_ceiling ROOT PROCESSES [BUFFER_KIB] < list

   Reads paths relative to ROOT, one per line, from stdin, and hashes each file with OpenSSL's
   SHA-256 in PROCESSES forked processes. The work is balanced dynamically: every process takes
   the next file of the list from a counter they share, so none idles while files remain (the
   bench passes the list largest first, the order gitmlm hashes in). Per file: open, reads
   through a buffer of BUFFER_KIB KiB (default 256) until one comes back short, fstat, close:
   the system calls gitmlm makes per file, with nothing else around them.

   Prints `seconds BYTES` (the wall time from the first fork to the last child reaped, and the
   bytes hashed), then `HEXDIGEST PATH` per file in the order given. A file that cannot be read
   or whose size differs from the bytes read is an error (exit 1): a ceiling that hashes wrong
   is no ceiling. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIGEST 32

struct shared {
    size_t next; /* the next file to take, for every process */
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *shared_map(size_t size) {
    /* Anonymous and shared: what a child writes there, the parent reads after reaping it. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static int hash_one(int dir, const char *rel, const EVP_MD *md, EVP_MD_CTX *ctx,
                    unsigned char *buf, size_t bufsize, unsigned char *out, int64_t *size) {
    int fd = openat(dir, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", rel, strerror(errno));
        return -1;
    }
    EVP_DigestInit_ex(ctx, md, NULL);
    int64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, bufsize);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", rel, strerror(errno));
            close(fd);
            return -1;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        total += n;
        /* A short read of a regular file is its end: a small file costs one read. */
        if ((size_t)n < bufsize)
            break;
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0 || st.st_size != total;
    close(fd);
    if (bad) {
        fprintf(stderr, "%s: read %lld bytes, not its size\n", rel, (long long)total);
        return -1;
    }
    EVP_DigestFinal_ex(ctx, out, NULL);
    *size = total;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROOT PROCESSES [BUFFER_KIB] < list\n", argv[0]);
        return 2;
    }
    int procs = atoi(argv[2]);
    size_t bufsize = (argc > 3 ? (size_t)atol(argv[3]) : 256) << 10;
    if (procs < 1 || bufsize == 0) {
        fprintf(stderr, "PROCESSES and BUFFER_KIB must be positive\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror(argv[1]);
        return 1;
    }

    size_t count = 0, cap = 1024;
    char **paths = malloc(cap * sizeof *paths);
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    while ((len = getline(&line, &linecap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (count == cap)
            paths = realloc(paths, (cap *= 2) * sizeof *paths);
        paths[count++] = strdup(line);
    }
    free(line);

    struct shared *sh = shared_map(sizeof *sh);
    unsigned char *digests = shared_map(count * DIGEST + 1);
    int64_t *sizes = shared_map(count * sizeof *sizes + 1);
    /* Fetched once: EVP_sha256() would look the implementation up on every init. */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md == NULL) {
        fprintf(stderr, "OpenSSL has no SHA256\n");
        return 1;
    }

    double start = now();
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid > 0)
            continue;
        unsigned char *buf = malloc(bufsize);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        for (;;) {
            size_t i = __atomic_fetch_add(&sh->next, 1, __ATOMIC_RELAXED);
            if (i >= count)
                break;
            if (hash_one(dir, paths[i], md, ctx, buf, bufsize, digests + i * DIGEST, &sizes[i]))
                _exit(1);
        }
        _exit(0);
    }
    int failed = 0, status;
    for (int p = 0; p < procs; p++) {
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    double took = now() - start;
    if (failed)
        return 1;

    int64_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += sizes[i];
    printf("%.6f %lld\n", took, (long long)total);
    for (size_t i = 0; i < count; i++) {
        for (int j = 0; j < DIGEST; j++)
            printf("%02x", digests[i * DIGEST + j]);
        printf("  %s\n", paths[i]);
    }
    return 0;
}
