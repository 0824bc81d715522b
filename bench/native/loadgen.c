/*
 * ww_loadgen: a closed-loop load generator for servers that speak the
 * u32-little-endian length-prefixed framing (4-byte LE length L, then L
 * bytes; L == 0 is a valid frame).
 *
 * It is written in C because on a 2-core machine a JavaScript load generator
 * becomes the bottleneck long before the server does.  Each thread owns one
 * epoll instance and a disjoint share of the connections; nothing is shared
 * between threads until the final merge, so adding threads adds no locking.
 *
 * Modes
 *   echo (default)  Every connection keeps --pipeline frames in flight.  The
 *                   payload of frame number `seq` on a connection is a slice
 *                   of a fixed pattern starting at (conn id + seq) % 251, so
 *                   every reply byte can be checked against what was sent; a
 *                   reply whose length or bytes differ counts as a mismatch,
 *                   and mismatches are errors.
 *   replay          --frame-file PATH: the file's bytes (one or more encoded
 *                   frames) are sent as one request; any whole frame that
 *                   comes back counts as its reply (--frame-replies N: N
 *                   frames answer one request).  Lets a full protocol be
 *                   driven later without teaching this program the protocol.
 *   connect-only    --connect-only --hold SECONDS: open the connections,
 *                   print "CONNECTED <n>" on stdout, hold them idle, then
 *                   close.  Used to measure server memory per connection.
 *   sink            --sink N [--hold SECONDS]: open the connections, print
 *                   "CONNECTED <n>", send nothing, and count the whole
 *                   frames the server pushes until every connection has N
 *                   (or --hold passes).  Reports frames, connections that
 *                   got all N, and the span from the first frame to the
 *                   last: the push fan-out rate is frames / span.  The
 *                   RESULT also gives first_ns and last_ns on the system-wide
 *                   CLOCK_MONOTONIC (Node's process.hrtime.bigint() reads
 *                   the same clock), so a server can time from its own start.
 *
 * Output: a human summary on stdout, then one line `RESULT {json}`.
 * Latencies come from a log-linear histogram (HdrHistogram-style, below).
 *
 * Exit status: 0 run completed without errors, 1 run completed with errors
 * (connection losses, mismatches) or without a single reply, 2 setup failure (bad option, could not
 * connect, ...), 3 the hard deadline fired (should never happen).
 *
 * Bounds: the run ends after --warmup + --duration seconds or after
 * --requests replies, whichever comes first; connecting is bounded by
 * --connect-timeout; and an alarm() hard deadline kills the process if any
 * of that machinery itself gets stuck.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define EXIT_RUN_ERRORS 1
#define EXIT_SETUP 2
#define EXIT_DEADLINE 3

#define PATTERN_PERIOD 251 /* prime, so slices drift through the pattern */
#define READ_CHUNK (256 * 1024)
#define MAX_EVENTS 512
#define MAX_PENDING_CONNECTS 256

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Histogram                                                                */
/*                                                                          */
/* Log-linear buckets in the HdrHistogram style, values in nanoseconds.     */
/* Values below 2^SUB_BITS are counted exactly (one bucket each).  Above    */
/* that, each power-of-two range [2^m, 2^(m+1)) is split into HALF linear   */
/* sub-buckets, so the bucket width is at most 1/HALF of the value:         */
/*                                                                          */
/*   index 0 .. 2^SUB_BITS-1          value itself                          */
/*   index 2^SUB_BITS + (s-1)*HALF + (v >> s) - HALF                        */
/*        where s = msb(v) - (SUB_BITS-1) >= 1, so HALF <= v >> s < 2*HALF  */
/*                                                                          */
/* With SUB_BITS = 11 the relative error is below 0.1% and values up to     */
/* 2^(SUB_BITS+MAX_SHIFT) ns (about 36 minutes) fit; larger ones saturate.  */
/* ------------------------------------------------------------------------ */

#define SUB_BITS 11
#define SUB_COUNT (1u << SUB_BITS)
#define HALF (SUB_COUNT / 2)
#define MAX_SHIFT 30
#define HIST_BUCKETS (SUB_COUNT + MAX_SHIFT * HALF)

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum;
} histogram;

static void hist_init(histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v)
{
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (SUB_BITS - 1);
    if (shift > MAX_SHIFT)
        return HIST_BUCKETS - 1;
    return SUB_COUNT + (shift - 1) * HALF + (unsigned)(v >> shift) - HALF;
}

/* Highest value that lands in bucket `i` (what HdrHistogram reports). */
static uint64_t hist_bucket_high(unsigned i)
{
    if (i < SUB_COUNT)
        return i;
    unsigned shift = (i - SUB_COUNT) / HALF + 1;
    uint64_t sub = (i - SUB_COUNT) % HALF + HALF;
    return ((sub + 1) << shift) - 1;
}

static inline void hist_record(histogram *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(histogram *into, const histogram *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

/* Value at percentile p (0..100): the high end of the bucket holding the
 * ceil(p% of total)-th value, clamped to the exact observed max. */
static uint64_t hist_percentile(const histogram *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *host;
    const char *port;
    int connections;
    int pipeline;
    uint32_t size;
    double duration;
    double warmup;
    int threads;
    uint64_t requests; /* 0 = bounded by time only */
    double connect_timeout;
    const char *frame_file;
    int frame_replies; /* replay: whole frames back that answer one request */
    int connect_only;
    long sink;         /* sink mode: frames expected per connection (0 = off) */
    double hold;
    int quiet;
} options;

static options opt = {
    .host = "127.0.0.1",
    .port = NULL,
    .connections = 1,
    .pipeline = 1,
    .size = 64,
    .duration = 5.0,
    .warmup = 1.0,
    .threads = 1,
    .requests = 0,
    .connect_timeout = 10.0,
    .frame_file = NULL,
    .frame_replies = 1,
    .connect_only = 0,
    .hold = 5.0,
    .quiet = 0,
};

static void usage(FILE *to)
{
    fprintf(to,
        "usage: ww_loadgen --port P [options]\n"
        "  --host H              server address, loopback only (default 127.0.0.1)\n"
        "  --port P              server port (required)\n"
        "  -c, --connections N   connections (default 1)\n"
        "  -p, --pipeline K      requests in flight per connection (default 1)\n"
        "  -s, --size B          echo payload bytes per frame (default 64, 0 allowed)\n"
        "  -d, --duration S      measured seconds (default 5)\n"
        "  -w, --warmup S        unmeasured seconds before that (default 1)\n"
        "  -t, --threads N       client threads (default 1)\n"
        "  -n, --requests N      stop after N measured replies (default 0 = time only)\n"
        "  --connect-timeout S   give up connecting after S seconds (default 10)\n"
        "  --frame-file PATH     replay mode: send the file's bytes as each request,\n"
        "                        count any whole frame back as the reply\n"
        "  --frame-replies N     replay: N whole frames back answer one request (default 1)\n"
        "  --connect-only        open the connections, hold them idle, close\n"
        "  --hold S              seconds to hold in --connect-only (default 5)\n"
        "  --sink N              send nothing; count frames pushed to each connection\n"
        "                        until each has N (bounded by --hold)\n"
        "  -q, --quiet           only print the RESULT line\n");
}

static int parse_int(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "ww_loadgen: %s must be an integer in [%ld, %ld], got '%s'\n", name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_secs(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ww_loadgen: %s must be a number of seconds in [%g, %g], got '%s'\n", name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_CTIMEOUT, O_FRAME, O_FREPLIES, O_CONNONLY, O_HOLD, O_SINK };
    static const struct option longopts[] = {
        { "host", required_argument, NULL, O_HOST },
        { "port", required_argument, NULL, O_PORT },
        { "connections", required_argument, NULL, 'c' },
        { "pipeline", required_argument, NULL, 'p' },
        { "size", required_argument, NULL, 's' },
        { "duration", required_argument, NULL, 'd' },
        { "warmup", required_argument, NULL, 'w' },
        { "threads", required_argument, NULL, 't' },
        { "requests", required_argument, NULL, 'n' },
        { "connect-timeout", required_argument, NULL, O_CTIMEOUT },
        { "frame-file", required_argument, NULL, O_FRAME },
        { "frame-replies", required_argument, NULL, O_FREPLIES },
        { "connect-only", no_argument, NULL, O_CONNONLY },
        { "hold", required_argument, NULL, O_HOLD },
        { "sink", required_argument, NULL, O_SINK },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "c:p:s:d:w:t:n:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case O_HOST: opt.host = optarg; break;
        case O_PORT:
            if (parse_int("--port", optarg, 1, 65535, &v)) return -1;
            opt.port = optarg;
            break;
        case 'c':
            if (parse_int("--connections", optarg, 1, 1000000, &v)) return -1;
            opt.connections = (int)v;
            break;
        case 'p':
            if (parse_int("--pipeline", optarg, 1, 65536, &v)) return -1;
            opt.pipeline = (int)v;
            break;
        case 's':
            if (parse_int("--size", optarg, 0, 64L << 20, &v)) return -1;
            opt.size = (uint32_t)v;
            break;
        case 'd': if (parse_secs("--duration", optarg, 0.01, 3600, &opt.duration)) return -1; break;
        case 'w': if (parse_secs("--warmup", optarg, 0, 600, &opt.warmup)) return -1; break;
        case 't':
            if (parse_int("--threads", optarg, 1, 256, &v)) return -1;
            opt.threads = (int)v;
            break;
        case 'n':
            if (parse_int("--requests", optarg, 0, LONG_MAX, &v)) return -1;
            opt.requests = (uint64_t)v;
            break;
        case O_CTIMEOUT: if (parse_secs("--connect-timeout", optarg, 0.1, 600, &opt.connect_timeout)) return -1; break;
        case O_FRAME: opt.frame_file = optarg; break;
        case O_FREPLIES:
            if (parse_int("--frame-replies", optarg, 1, 1 << 20, &v)) return -1;
            opt.frame_replies = (int)v;
            break;
        case O_CONNONLY: opt.connect_only = 1; break;
        case O_SINK:
            if (parse_int("--sink", optarg, 1, 1L << 30, &v)) return -1;
            opt.sink = v;
            opt.connect_only = 1; /* connect like connect-only, then count */
            break;
        case O_HOLD: if (parse_secs("--hold", optarg, 0, 3600, &opt.hold)) return -1; break;
        case 'q': opt.quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ww_loadgen: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!opt.port) {
        fprintf(stderr, "ww_loadgen: --port is required\n");
        return -1;
    }
    if (opt.threads > opt.connections)
        opt.threads = opt.connections;
    if ((uint64_t)opt.pipeline * ((uint64_t)opt.size + 4) > (1ull << 30)) {
        fprintf(stderr, "ww_loadgen: --pipeline x (--size + 4) must stay below 1 GiB per connection\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Shared run state                                                         */
/* ------------------------------------------------------------------------ */

static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;

static uint8_t *pattern;       /* size + PATTERN_PERIOD bytes, echo mode */
static uint8_t *replay_bytes;  /* the request in replay mode */
static size_t request_len;     /* bytes per request on the wire */

static pthread_barrier_t connected_barrier, start_barrier;
/* Written by the main thread between the two barriers, read-only after. */
static uint64_t t_measure_start, t_end;
static atomic_int stop_flag;
static atomic_uint_fast64_t replies_total; /* measured replies, for --requests */

/* ------------------------------------------------------------------------ */
/* Per-connection and per-thread state                                      */
/* ------------------------------------------------------------------------ */

enum { C_CONNECTING, C_OPEN, C_DEAD };

typedef struct conn {
    int fd;
    int state;
    uint32_t id;
    /* Frames sent (or queued) and not yet answered; the FIFO holds their
     * send times, oldest at head.  Capacity = pipeline. */
    uint64_t *sent_at;
    uint32_t fifo_head, fifo_len;
    uint32_t to_queue;    /* frames to append to out at the next flush */
    uint64_t seq_sent;    /* echo: sequence number of the next frame built */
    uint64_t seq_reply;   /* echo: sequence number of the next reply */
    /* Outgoing bytes not yet accepted by the kernel. */
    uint8_t *out;
    size_t out_off, out_len;
    int want_out;         /* EPOLLOUT registered */
    int dirty;            /* on the thread's flush list */
    /* Streaming reply parser. */
    uint8_t hdr[4];
    uint32_t hdr_have;
    uint32_t body_len, body_pos;
    int body_bad;
    uint32_t frames_for_request; /* replay: frames seen for the oldest request */
    uint64_t sunk;               /* sink: whole frames received */
} conn;

typedef struct {
    int index;
    int epfd;
    conn *conns;
    int nconns;
    conn **flush_list;
    int nflush;
    uint8_t *rbuf;
    histogram *hist;
    uint64_t replies, sent, mismatches, conn_errors, bytes_in;
    int open_conns;
    uint64_t sink_frames, sink_first, sink_last; /* sink: frames, first/last arrival (ns) */
    int sink_done;                               /* sink: connections that got all N */
    int setup_failed;
    char setup_error[160];
    pthread_t tid;
} worker;

static worker *workers;

static void conn_fail(worker *w, conn *c, const char *why, int err)
{
    if (c->state == C_DEAD)
        return;
    if (c->state == C_OPEN)
        w->open_conns--;
    c->state = C_DEAD;
    w->conn_errors++;
    if (w->conn_errors <= 3 && !opt.quiet)
        fprintf(stderr, "ww_loadgen: connection %u: %s%s%s\n", c->id, why,
                err ? ": " : "", err ? strerror(err) : "");
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static inline int measuring(uint64_t t)
{
    return t >= t_measure_start && t < t_end;
}

/* Append `to_queue` requests to the connection's outgoing bytes.  Echo frames
 * are cut from the pattern at (id + seq) % PATTERN_PERIOD. */
static void build_requests(conn *c, uint64_t t)
{
    size_t cap = (size_t)opt.pipeline * request_len;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    else if (c->out_off && c->out_len + c->to_queue * request_len > cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    for (; c->to_queue; c->to_queue--) {
        uint8_t *dst = c->out + c->out_len;
        if (replay_bytes) {
            memcpy(dst, replay_bytes, request_len);
        } else {
            uint32_t n = opt.size;
            dst[0] = (uint8_t)n;
            dst[1] = (uint8_t)(n >> 8);
            dst[2] = (uint8_t)(n >> 16);
            dst[3] = (uint8_t)(n >> 24);
            memcpy(dst + 4, pattern + (c->id + c->seq_sent) % PATTERN_PERIOD, n);
            c->seq_sent++;
        }
        c->out_len += request_len;
        uint32_t slot = (c->fifo_head + c->fifo_len) % (uint32_t)opt.pipeline;
        c->sent_at[slot] = t;
        c->fifo_len++;
    }
}

static void set_want_out(worker *w, conn *c, int want)
{
    if (c->want_out == want)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

/* One write() of everything pending on the connection. */
static void flush_conn(worker *w, conn *c, uint64_t t)
{
    if (c->state != C_OPEN)
        return;
    if (c->to_queue)
        build_requests(c, t);
    size_t len = c->out_len - c->out_off;
    if (len == 0)
        return;
    ssize_t n = send(c->fd, c->out + c->out_off, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            set_want_out(w, c, 1);
            return;
        }
        if (errno == EINTR)
            return;
        conn_fail(w, c, "send", errno);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        set_want_out(w, c, 0);
    } else {
        set_want_out(w, c, 1);
    }
}

static inline void mark_dirty(worker *w, conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        w->flush_list[w->nflush++] = c;
    }
}

/* A whole reply frame has arrived on `c`. */
static void on_reply(worker *w, conn *c, int bad, uint64_t t)
{
    if (c->fifo_len == 0) {
        /* The server sent a frame nobody asked for. */
        w->mismatches++;
        return;
    }
    if (replay_bytes && ++c->frames_for_request < (uint32_t)opt.frame_replies)
        return;
    c->frames_for_request = 0;
    uint64_t sent = c->sent_at[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % (uint32_t)opt.pipeline;
    c->fifo_len--;
    c->seq_reply++;
    if (measuring(t)) {
        if (bad) {
            w->mismatches++;
        } else {
            hist_record(w->hist, t - sent);
            w->replies++;
            if (opt.requests && atomic_fetch_add_explicit(&replies_total, 1, memory_order_relaxed) + 1 >= opt.requests)
                atomic_store_explicit(&stop_flag, 1, memory_order_relaxed);
        }
    } else if (bad) {
        w->mismatches++; /* a wrong byte is wrong even during warm-up */
    }
    if (t < t_end && !atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        c->to_queue++;
        w->sent++;
        mark_dirty(w, c);
    }
}

/* Feed received bytes through the streaming frame parser. */
/* Streaming framing: take length-prefix bytes from (*p, *n) into c->hdr.
 * Returns 1 once all 4 are in (body_len set, body_pos 0), 0 when the input
 * ran out first. */
static int take_header(conn *c, const uint8_t **p, size_t *n)
{
    size_t take = 4 - c->hdr_have;
    if (take > *n)
        take = *n;
    memcpy(c->hdr + c->hdr_have, *p, take);
    c->hdr_have += (uint32_t)take;
    *p += take;
    *n -= take;
    if (c->hdr_have < 4)
        return 0;
    c->body_len = (uint32_t)c->hdr[0] | (uint32_t)c->hdr[1] << 8 |
                  (uint32_t)c->hdr[2] << 16 | (uint32_t)c->hdr[3] << 24;
    c->body_pos = 0;
    return 1;
}

static void parse_replies(worker *w, conn *c, const uint8_t *p, size_t n, uint64_t t)
{
    while (n > 0) {
        if (c->hdr_have < 4) {
            if (!take_header(c, &p, &n))
                return;
            c->body_bad = !replay_bytes && c->body_len != opt.size;
        }
        size_t take = c->body_len - c->body_pos;
        if (take > n)
            take = n;
        if (!replay_bytes && !c->body_bad && take) {
            const uint8_t *want = pattern + (c->id + c->seq_reply) % PATTERN_PERIOD + c->body_pos;
            if (memcmp(p, want, take) != 0)
                c->body_bad = 1;
        }
        c->body_pos += (uint32_t)take;
        p += take;
        n -= take;
        if (c->body_pos == c->body_len) {
            c->hdr_have = 0;
            on_reply(w, c, c->body_bad, t);
        }
    }
}

/* Sink mode: count whole frames in a stream of bytes (no checking). */
static void sink_parse(conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (c->hdr_have < 4 && !take_header(c, &p, &n))
            return;
        size_t take = c->body_len - c->body_pos;
        if (take > n)
            take = n;
        c->body_pos += (uint32_t)take;
        p += take;
        n -= take;
        if (c->body_pos == c->body_len) {
            c->hdr_have = 0;
            c->sunk++;
        }
    }
}

/* One recv into w->rbuf: the byte count, or 0 when there was nothing (the
 * connection is failed with the reason on EOF or an error). */
static size_t recv_some(worker *w, conn *c)
{
    ssize_t n = recv(c->fd, w->rbuf, READ_CHUNK, 0);
    if (n > 0)
        return (size_t)n;
    if (n == 0)
        conn_fail(w, c, "server closed the connection", 0);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_fail(w, c, "recv", errno);
    return 0;
}

static void on_readable(worker *w, conn *c)
{
    size_t n = recv_some(w, c);
    if (n == 0)
        return;
    uint64_t t = now_ns();
    if (measuring(t))
        w->bytes_in += (uint64_t)n;
    parse_replies(w, c, w->rbuf, n, t);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                               */
/* ------------------------------------------------------------------------ */

static int start_connect(worker *w, conn *c)
{
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(w->setup_error, sizeof w->setup_error, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = C_CONNECTING;
    if (connect(fd, (struct sockaddr *)&server_addr, server_addrlen) < 0 && errno != EINPROGRESS) {
        snprintf(w->setup_error, sizeof w->setup_error, "connect: %s", strerror(errno));
        close(fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        snprintf(w->setup_error, sizeof w->setup_error, "epoll_ctl: %s", strerror(errno));
        close(fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* Open every connection of this worker, at most MAX_PENDING_CONNECTS at a
 * time so a burst does not overflow the server's listen backlog. */
static int connect_all(worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
    int next = 0, pending = 0, done = 0;
    while (done < w->nconns) {
        while (next < w->nconns && pending < MAX_PENDING_CONNECTS) {
            if (start_connect(w, &w->conns[next]) < 0)
                return -1;
            next++;
            pending++;
        }
        uint64_t t = now_ns();
        if (t >= deadline) {
            snprintf(w->setup_error, sizeof w->setup_error,
                     "connect timed out after %.1f s (%d of %d connected)", opt.connect_timeout, done, w->nconns);
            return -1;
        }
        int ms = (int)((deadline - t) / 1000000) + 1;
        if (ms > 100)
            ms = 100;
        int k = epoll_wait(w->epfd, evs, MAX_EVENTS, ms);
        if (k < 0 && errno != EINTR) {
            snprintf(w->setup_error, sizeof w->setup_error, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state != C_CONNECTING)
                continue;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                snprintf(w->setup_error, sizeof w->setup_error, "connect to %s port %s: %s",
                         opt.host, opt.port, strerror(err));
                return -1;
            }
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
            epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
            c->state = C_OPEN;
            w->open_conns++;
            pending--;
            done++;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Worker thread                                                            */
/* ------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];

    if (connect_all(w) < 0)
        w->setup_failed = 1;
    pthread_barrier_wait(&connected_barrier);
    pthread_barrier_wait(&start_barrier); /* main has set t_measure_start, t_end */
    if (atomic_load(&stop_flag))
        return NULL;

    if (opt.sink) {
        /* Count whole frames per connection; stop when every connection has
         * its N or at the deadline. */
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && now_ns() < t_end &&
               w->sink_done + w->conn_errors < (uint64_t)w->nconns) {
            int k = epoll_wait(w->epfd, evs, MAX_EVENTS, 50);
            for (int i = 0; i < k; i++) {
                conn *c = evs[i].data.ptr;
                if (c->state != C_OPEN)
                    continue;
                size_t n = recv_some(w, c);
                if (n == 0)
                    continue;
                uint64_t t = now_ns();
                uint64_t before = c->sunk;
                sink_parse(c, w->rbuf, n);
                if (c->sunk > before) {
                    if (!w->sink_frames)
                        w->sink_first = t;
                    w->sink_last = t;
                    w->sink_frames += c->sunk - before;
                    if (before < (uint64_t)opt.sink && c->sunk >= (uint64_t)opt.sink)
                        w->sink_done++;
                }
                w->bytes_in += (uint64_t)n;
            }
        }
        return NULL;
    }

    if (opt.connect_only) {
        /* Hold idle; only notice connections the server drops. */
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && now_ns() < t_end) {
            int k = epoll_wait(w->epfd, evs, MAX_EVENTS, 50);
            for (int i = 0; i < k; i++) {
                conn *c = evs[i].data.ptr;
                if (c->state != C_OPEN)
                    continue;
                recv_some(w, c); /* idle: only a close or an error matters */
            }
        }
        return NULL;
    }

    uint64_t t = now_ns();
    for (int i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        c->to_queue = (uint32_t)opt.pipeline;
        w->sent += (uint64_t)opt.pipeline;
        mark_dirty(w, c);
    }
    for (;;) {
        /* Flush: one send per connection per loop turn, carrying every frame
         * queued for it since the last turn. */
        t = now_ns();
        for (int i = 0; i < w->nflush; i++) {
            conn *c = w->flush_list[i];
            c->dirty = 0;
            flush_conn(w, c, t);
        }
        w->nflush = 0;
        if (t >= t_end || atomic_load_explicit(&stop_flag, memory_order_relaxed) || w->open_conns == 0)
            break;
        int ms = (int)((t_end - t) / 1000000) + 1;
        if (ms > 20)
            ms = 20;
        int k = epoll_wait(w->epfd, evs, MAX_EVENTS, ms);
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state != C_OPEN)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(w, c);
            if (c->state == C_OPEN && (evs[i].events & EPOLLOUT))
                mark_dirty(w, c);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Setup helpers                                                            */
/* ------------------------------------------------------------------------ */

static int resolve_server(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *res;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ww_loadgen: --host must be a numeric loopback address: %s\n", gai_strerror(rc));
        return -1;
    }
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    int loopback = 0;
    if (server_addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&server_addr;
        loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (server_addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&server_addr;
        loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    if (!loopback) {
        fprintf(stderr, "ww_loadgen: --host must be a loopback address (127.0.0.0/8 or ::1), got '%s'\n", opt.host);
        return -1;
    }
    return 0;
}

static int load_frame_file(void)
{
    FILE *f = fopen(opt.frame_file, "rb");
    if (!f) {
        fprintf(stderr, "ww_loadgen: --frame-file %s: %s\n", opt.frame_file, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || st.st_size < 4 || st.st_size > (64 << 20)) {
        fprintf(stderr, "ww_loadgen: --frame-file %s must hold 4 bytes to 64 MiB\n", opt.frame_file);
        fclose(f);
        return -1;
    }
    request_len = (size_t)st.st_size;
    replay_bytes = malloc(request_len);
    if (!replay_bytes || fread(replay_bytes, 1, request_len, f) != request_len) {
        fprintf(stderr, "ww_loadgen: --frame-file %s: read failed\n", opt.frame_file);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* The file must be whole frames, or the server would wait forever. */
    size_t off = 0;
    int frames = 0;
    while (off + 4 <= request_len) {
        uint32_t len = (uint32_t)replay_bytes[off] | (uint32_t)replay_bytes[off + 1] << 8 |
                       (uint32_t)replay_bytes[off + 2] << 16 | (uint32_t)replay_bytes[off + 3] << 24;
        if (len > request_len - off - 4)
            break;
        off += 4 + (size_t)len;
        frames++;
    }
    if (off != request_len) {
        fprintf(stderr, "ww_loadgen: --frame-file %s is not a whole number of length-prefixed frames "
                        "(%d whole frames, then %zu stray bytes)\n", opt.frame_file, frames, request_len - off);
        return -1;
    }
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_deadline(int sig)
{
    (void)sig;
    static const char msg[] = "ww_loadgen: hard deadline reached, exiting\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(EXIT_DEADLINE);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void print_setup_failure(const char *why)
{
    fprintf(stderr, "ww_loadgen: setup failed: %s\n", why);
    printf("RESULT {\"ok\":false,\"mode\":\"%s\",\"error\":\"", opt.connect_only ? "connect-only" : replay_bytes ? "replay" : "echo");
    for (const char *p = why; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        if ((unsigned char)*p >= 0x20)
            putchar(*p);
    }
    printf("\"}\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (parse_options(argc, argv) < 0)
        return EXIT_SETUP;
    if (resolve_server() < 0)
        return EXIT_SETUP;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    double run_secs = opt.connect_only ? opt.hold : opt.warmup + opt.duration;
    signal(SIGALRM, on_deadline);
    alarm((unsigned)(opt.connect_timeout + run_secs + 10.0));

    if (opt.frame_file) {
        if (load_frame_file() < 0)
            return EXIT_SETUP;
    } else {
        request_len = 4 + (size_t)opt.size;
        pattern = malloc((size_t)opt.size + PATTERN_PERIOD);
        if (!pattern) {
            fprintf(stderr, "ww_loadgen: out of memory\n");
            return EXIT_SETUP;
        }
        for (size_t i = 0; i < (size_t)opt.size + PATTERN_PERIOD; i++)
            pattern[i] = (uint8_t)(i * 7 + (i >> 8) + 1);
    }

    /* Spread connections over threads; each thread gets its own epoll. */
    int nthreads = opt.threads;
    workers = calloc((size_t)nthreads, sizeof *workers);
    conn *all = calloc((size_t)opt.connections, sizeof *all);
    if (!workers || !all) {
        fprintf(stderr, "ww_loadgen: out of memory\n");
        return EXIT_SETUP;
    }
    int per = opt.connections / nthreads, extra = opt.connections % nthreads, at = 0;
    for (int i = 0; i < nthreads; i++) {
        worker *w = &workers[i];
        w->index = i;
        w->nconns = per + (i < extra);
        w->conns = all + at;
        at += w->nconns;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->flush_list = calloc((size_t)w->nconns, sizeof *w->flush_list);
        w->rbuf = malloc(READ_CHUNK);
        w->hist = malloc(sizeof *w->hist);
        if (w->epfd < 0 || !w->flush_list || !w->rbuf || !w->hist) {
            fprintf(stderr, "ww_loadgen: setup: %s\n", strerror(errno));
            return EXIT_SETUP;
        }
        hist_init(w->hist);
        for (int j = 0; j < w->nconns; j++) {
            conn *c = &w->conns[j];
            c->id = (uint32_t)(w->conns - all + j);
            c->fd = -1;
            if (!opt.connect_only) {
                c->sent_at = calloc((size_t)opt.pipeline, sizeof *c->sent_at);
                c->out = malloc((size_t)opt.pipeline * request_len);
                if (!c->sent_at || !c->out) {
                    fprintf(stderr, "ww_loadgen: out of memory for %d connections\n", opt.connections);
                    return EXIT_SETUP;
                }
            }
        }
    }

    pthread_barrier_init(&connected_barrier, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&start_barrier, NULL, (unsigned)nthreads + 1);
    uint64_t t_connect0 = now_ns();
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "ww_loadgen: pthread_create failed\n");
            return EXIT_SETUP;
        }
    }
    pthread_barrier_wait(&connected_barrier);
    uint64_t t_connected = now_ns();
    int failed = 0;
    for (int i = 0; i < nthreads; i++) {
        if (workers[i].setup_failed && !failed) {
            failed = 1;
            print_setup_failure(workers[i].setup_error);
        }
    }
    if (failed)
        atomic_store(&stop_flag, 1);
    t_measure_start = t_connected + (uint64_t)((opt.connect_only ? 0 : opt.warmup) * 1e9);
    t_end = t_measure_start + (uint64_t)((opt.connect_only ? opt.hold : opt.duration) * 1e9);
    if (opt.connect_only && !failed) {
        printf("CONNECTED %d in %.3f s\n", opt.connections, (double)(t_connected - t_connect0) / 1e9);
        fflush(stdout);
    }
    pthread_barrier_wait(&start_barrier);
    if (failed) {
        for (int i = 0; i < nthreads; i++)
            pthread_join(workers[i].tid, NULL);
        return EXIT_SETUP;
    }

    /* Sample our own CPU time across the measured window. */
    double cpu0 = 0, cpu1 = 0;
    uint64_t tw = now_ns();
    if (t_measure_start > tw) {
        uint64_t d = t_measure_start - tw;
        struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    }
    cpu0 = cpu_seconds();
    uint64_t tc0 = now_ns();
    for (int i = 0; i < nthreads; i++)
        pthread_join(workers[i].tid, NULL);
    uint64_t tc1 = now_ns();
    cpu1 = cpu_seconds();

    /* Merge. */
    histogram *h = workers[0].hist;
    uint64_t replies = 0, sent = 0, mismatches = 0, conn_errors = 0, bytes_in = 0, unanswered = 0;
    for (int i = 0; i < nthreads; i++) {
        worker *w = &workers[i];
        for (int j = 0; j < w->nconns; j++)
            if (w->conns[j].state == C_OPEN)
                unanswered += w->conns[j].fifo_len;
        if (i)
            hist_merge(h, w->hist);
        replies += w->replies;
        sent += w->sent;
        mismatches += w->mismatches;
        conn_errors += w->conn_errors;
        bytes_in += w->bytes_in;
    }
    uint64_t errors = conn_errors + mismatches;
    /* The measured window ends at t_end, or earlier if --requests stopped it. */
    double window = (double)((tc1 < t_end ? tc1 : t_end) - t_measure_start) / 1e9;
    if (window <= 0)
        window = 1e-9;
    double cpu_pct = tc1 > tc0 ? 100.0 * (cpu1 - cpu0) / ((double)(tc1 - tc0) / 1e9) : 0;
    double connect_secs = (double)(t_connected - t_connect0) / 1e9;
    const char *mode = opt.sink ? "sink" : opt.connect_only ? "connect-only" : replay_bytes ? "replay" : "echo";

    if (opt.sink) {
        uint64_t frames = 0, first = UINT64_MAX, last = 0;
        int done = 0;
        for (int i = 0; i < nthreads; i++) {
            worker *w = &workers[i];
            frames += w->sink_frames;
            done += w->sink_done;
            if (w->sink_frames && w->sink_first < first)
                first = w->sink_first;
            if (w->sink_last > last)
                last = w->sink_last;
        }
        double span = frames > 1 && last > first ? (double)(last - first) / 1e9 : 0;
        double srate = span > 0 ? (double)(frames - 1) / span : 0;
        int complete = done == opt.connections;
        if (!opt.quiet)
            printf("sink: %d connections, %" PRIu64 " frames (%d connections got all %ld) in %.3f s: %.0f frames/s; "
                   "%" PRIu64 " connection errors\n",
                   opt.connections, frames, done, opt.sink, span, srate, conn_errors);
        printf("RESULT {\"ok\":%s,\"mode\":\"sink\",\"connections\":%d,\"connect_s\":%.3f,\"expected_per_conn\":%ld,"
               "\"frames\":%" PRIu64 ",\"complete_conns\":%d,\"span_s\":%.6f,\"rate\":%.1f,\"bytes_in\":%" PRIu64 ","
               "\"errors\":%" PRIu64 ",\"cpu_pct\":%.1f,\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64 "}\n",
               complete && !errors ? "true" : "false", opt.connections, connect_secs, opt.sink, frames, done, span,
               srate, bytes_in, errors, cpu_pct, frames ? first : 0, last);
        fflush(stdout);
        return complete && !errors ? 0 : EXIT_RUN_ERRORS;
    }

    if (opt.connect_only) {
        if (!opt.quiet)
            printf("held %d connections for %.1f s, %" PRIu64 " dropped by the server\n",
                   opt.connections, opt.hold, conn_errors);
        printf("RESULT {\"ok\":true,\"mode\":\"%s\",\"connections\":%d,\"connect_s\":%.3f,"
               "\"hold_s\":%.3f,\"errors\":%" PRIu64 "}\n",
               mode, opt.connections, connect_secs, opt.hold, errors);
        fflush(stdout);
        return errors ? EXIT_RUN_ERRORS : 0;
    }

#define US(v) ((double)(v) / 1000.0)
    double rate = (double)replies / window;
    double mean = h->total ? h->sum / (double)h->total : 0;
    uint64_t p50 = hist_percentile(h, 50), p90 = hist_percentile(h, 90), p99 = hist_percentile(h, 99),
             p999 = hist_percentile(h, 99.9);
    uint64_t mn = h->total ? h->min : 0;
    if (!opt.quiet) {
        printf("%s: %d conns x %d in flight, %u-byte %s, %d thread%s, %.1f s warm-up + %.2f s measured\n",
               mode, opt.connections, opt.pipeline, replay_bytes ? (unsigned)request_len : opt.size,
               replay_bytes ? "requests from the frame file" : "payloads", nthreads, nthreads > 1 ? "s" : "",
               opt.warmup, window);
        printf("  replies %" PRIu64 "  (%.0f/s, %.2f MB/s in)\n", replies, rate, (double)bytes_in / window / 1e6);
        printf("  errors  %" PRIu64 "  (mismatches %" PRIu64 ", connection errors %" PRIu64 ")\n",
               errors, mismatches, conn_errors);
        printf("  latency us: min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
               US(mn), US(p50), US(p90), US(p99), US(p999), US(h->max), US(mean));
        printf("  loadgen cpu %.0f%% of one core\n", cpu_pct);
    }
    if (replies == 0)
        fprintf(stderr, "ww_loadgen: no replies in the measured window (%" PRIu64 " requests unanswered)\n", unanswered);
    printf("RESULT {\"ok\":true,\"mode\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"size\":%u,"
           "\"request_bytes\":%zu,\"threads\":%d,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
           "\"replies\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"unanswered\":%" PRIu64 ",\"rate\":%.1f,\"bytes_in\":%" PRIu64 ","
           "\"errors\":%" PRIu64 ",\"mismatches\":%" PRIu64 ",\"conn_errors\":%" PRIu64 ","
           "\"latency_us\":{\"min\":%.2f,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p99_9\":%.2f,"
           "\"max\":%.2f,\"mean\":%.2f},\"cpu_pct\":%.1f,\"connect_s\":%.3f}\n",
           mode, opt.connections, opt.pipeline, replay_bytes ? 0u : opt.size, request_len, nthreads,
           opt.warmup, window, replies, sent, unanswered, rate, bytes_in, errors, mismatches, conn_errors,
           US(mn), US(p50), US(p90), US(p99), US(p999), US(h->max), US(mean), cpu_pct, connect_secs);
    fflush(stdout);
    return errors || replies == 0 ? EXIT_RUN_ERRORS : 0;
}
