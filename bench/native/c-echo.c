/*
 * ww_c_echo: a minimal epoll echo server for the u32-little-endian
 * length-prefixed framing, used as the near-the-limit reference in the
 * benchmarks.
 *
 *   ww_c_echo --port P [--host H] [--work-us N] [--threads N]
 *
 * Each read is parsed into whole frames; every whole frame costs --work-us
 * microseconds of busy CPU (a spin on CLOCK_MONOTONIC), then all whole frames
 * of that read go back in one send().  A partial frame waits in a
 * per-connection buffer that exists only while something is partial, so an
 * idle connection costs one small struct.  If the kernel will not take the
 * whole reply, the rest is kept and the connection stops reading until it
 * drains (backpressure instead of unbounded buffering).
 *
 * --threads N starts N independent event loops, each with its own listening
 * socket bound with SO_REUSEPORT, so the kernel spreads connections across
 * them; there is no shared state between threads.
 *
 * Prints "listening on <host> port <port> ..." when ready (--port 0 picks a
 * free port and prints it) and exits 0 on SIGINT or SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define MAX_EVENTS 256
#define MAX_FRAME (64u << 20)

typedef struct {
    int fd;
    int reading;          /* EPOLLIN registered (off while output is stuck) */
    uint8_t *in;          /* partial frame bytes, NULL when none */
    size_t in_len, in_cap;
    uint8_t *out;         /* reply bytes the kernel has not taken yet */
    size_t out_off, out_len;
} conn;

typedef struct {
    int lfd, epfd;
    uint8_t *scratch;
    pthread_t tid;
} loop;

static const char *opt_host = "127.0.0.1";
static int opt_port = -1;
static long opt_work_us = 0;
static int opt_threads = 1;
static atomic_int stopping;
/* A tiny marker object registered for the listening socket. */
static char listener_tag;

static void burn_us(long us)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long long end = (long long)t0.tv_sec * 1000000000LL + t0.tv_nsec + us * 1000LL;
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((long long)t.tv_sec * 1000000000LL + t.tv_nsec < end);
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void conn_close(loop *l, conn *c)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Length of the prefix of buf made of whole frames; counts them in *frames.
 * Returns (size_t)-1 if a frame announces more than MAX_FRAME bytes. */
static size_t whole_frames(const uint8_t *buf, size_t len, size_t *frames, size_t *need)
{
    size_t off = 0, n = 0;
    *need = 4;
    while (len - off >= 4) {
        uint32_t flen = le32(buf + off);
        if (flen > MAX_FRAME)
            return (size_t)-1;
        if (len - off - 4 < flen) {
            *need = 4 + (size_t)flen;
            break;
        }
        off += 4 + (size_t)flen;
        n++;
    }
    *frames = n;
    return off;
}

static void set_events(loop *l, conn *c, int reading)
{
    struct epoll_event ev = { .events = reading ? EPOLLIN : EPOLLOUT, .data.ptr = c };
    epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->reading = reading;
}

/* Send `len` reply bytes; keep what the kernel refuses.  0 ok, -1 close. */
static int send_reply(loop *l, conn *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(c->fd, p + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (done < len) {
        c->out = malloc(len - done);
        if (!c->out)
            return -1;
        memcpy(c->out, p + done, len - done);
        c->out_off = 0;
        c->out_len = len - done;
        set_events(l, c, 0);
    }
    return 0;
}

static void on_readable(loop *l, conn *c)
{
    uint8_t *buf;
    size_t have, cap;
    if (c->in) {
        buf = c->in;
        have = c->in_len;
        cap = c->in_cap;
    } else {
        buf = l->scratch;
        have = 0;
        cap = READ_CHUNK;
    }
    ssize_t n = recv(c->fd, buf + have, cap - have, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(l, c);
        return;
    }
    if (n < 0)
        return;
    have += (size_t)n;

    size_t frames, need;
    size_t whole = whole_frames(buf, have, &frames, &need);
    if (whole == (size_t)-1) {
        conn_close(l, c);
        return;
    }
    if (opt_work_us > 0)
        for (size_t i = 0; i < frames; i++)
            burn_us(opt_work_us);
    if (whole && send_reply(l, c, buf, whole) < 0) {
        conn_close(l, c);
        return;
    }

    size_t rest = have - whole;
    if (rest == 0) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return;
    }
    /* Keep the partial frame, in a buffer big enough for the whole frame. */
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (c->in && c->in_cap >= want) {
        memmove(c->in, c->in + whole, rest);
    } else {
        uint8_t *nb = malloc(want);
        if (!nb) {
            conn_close(l, c);
            return;
        }
        memcpy(nb, buf + whole, rest);
        free(c->in);
        c->in = nb;
        c->in_cap = want;
    }
    c->in_len = rest;
}

static void on_writable(loop *l, conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(l, c);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = 0;
    set_events(l, c, 1);
}

static void on_accept(loop *l)
{
    for (;;) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or EMFILE and friends: try again next wake-up */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->reading = 1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void *loop_main(void *arg)
{
    loop *l = arg;
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        int k = epoll_wait(l->epfd, evs, MAX_EVENTS, 200);
        for (int i = 0; i < k; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                on_accept(l);
                continue;
            }
            conn *c = evs[i].data.ptr;
            if (c->reading)
                on_readable(l, c);
            else
                on_writable(l, c);
        }
    }
    return NULL;
}

static int open_listener(const struct sockaddr *sa, socklen_t salen, int reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, sa, salen) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "ww_c_echo: %s must be an integer in [%ld, %ld], got '%s'\n", name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'H' },
        { "work-us", required_argument, NULL, 'w' },
        { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p': if (parse_long("--port", optarg, 0, 65535, &v)) return 2; opt_port = (int)v; break;
        case 'H': opt_host = optarg; break;
        case 'w': if (parse_long("--work-us", optarg, 0, 10000000, &v)) return 2; opt_work_us = v; break;
        case 't': if (parse_long("--threads", optarg, 1, 64, &v)) return 2; opt_threads = (int)v; break;
        case 'h':
            printf("usage: ww_c_echo --port P [--host H] [--work-us N] [--threads N]\n");
            return 0;
        default:
            fprintf(stderr, "usage: ww_c_echo --port P [--host H] [--work-us N] [--threads N]\n");
            return 2;
        }
    }
    if (opt_port < 0) {
        fprintf(stderr, "ww_c_echo: --port is required\n");
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", opt_port);
    int rc = getaddrinfo(opt_host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ww_c_echo: --host must be a numeric address: %s\n", gai_strerror(rc));
        return 2;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen = res->ai_addrlen;
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);

    /* Block the stop signals in every thread; main waits for them below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    loop *loops = calloc((size_t)opt_threads, sizeof *loops);
    if (!loops)
        return 2;
    int reuseport = opt_threads > 1;
    for (int i = 0; i < opt_threads; i++) {
        loop *l = &loops[i];
        l->lfd = open_listener((struct sockaddr *)&addr, addrlen, reuseport);
        if (l->lfd < 0) {
            fprintf(stderr, "ww_c_echo: listen on %s port %d: %s\n", opt_host, opt_port, strerror(errno));
            return 2;
        }
        if (i == 0 && opt_port == 0) {
            /* Later SO_REUSEPORT listeners must bind the port the first got. */
            getsockname(l->lfd, (struct sockaddr *)&addr, &addrlen);
            opt_port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                         : ((struct sockaddr_in *)&addr)->sin_port);
        }
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        l->scratch = malloc(READ_CHUNK);
        if (l->epfd < 0 || !l->scratch)
            return 2;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->lfd, &ev);
    }
    for (int i = 0; i < opt_threads; i++) {
        if (pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]) != 0) {
            fprintf(stderr, "ww_c_echo: pthread_create failed\n");
            return 2;
        }
    }
    printf("ww_c_echo listening on %s port %d (threads %d, work-us %ld)\n", opt_host, opt_port, opt_threads,
           opt_work_us);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    atomic_store(&stopping, 1);
    for (int i = 0; i < opt_threads; i++) {
        pthread_join(loops[i].tid, NULL);
        close(loops[i].lfd);
        close(loops[i].epfd);
    }
    return 0;
}
