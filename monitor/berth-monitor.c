/*
 * berth-monitor: berth's per-container monitor.
 *
 * One process per container. It outlives berthd (double fork + setsid), is the
 * child subreaper of the container's init, runs `runc create`, holds the
 * container's stdio (pipes, or the pty master in TTY mode), writes Docker
 * json-file logs with rotation, serves live attach clients with stdcopy frames,
 * takes control commands (resize, close-stdin) and records the exit status in
 * <state-dir>/exit.json. It never runs `runc start` or `runc delete`: berthd does.
 *
 * One thread, one poll() loop, SIGCHLD through a signalfd. C11 + Linux libc only.
 * The protocol is documented in monitor/README.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MONITOR_VERSION "1"
#define TS_LEN 96 /* room for any struct tm, as far as the compiler knows */

#define READ_CHUNK (32 * 1024)          /* one read from the container = one attach frame */
#define MAX_LINE (16 * 1024)            /* a longer line is split into several log entries */
#define CLIENT_MAX_BUF (1024 * 1024)    /* an attach client further behind than this is dropped */
#define STDIN_MAX_BUF (1024 * 1024)     /* stop reading clients while this much stdin is queued */
#define CAPTURE_MAX (8 * 1024)          /* runc's stderr kept for the error report */
#define LOG_FLUSH_AT (64 * 1024)        /* log bytes buffered before a write() */
#define MAX_CLIENTS 256               /* beyond this, new connections wait in the backlog */
#define DRAIN_TIMEOUT_MS 5000           /* after init exits, wait at most this long for EOF */
#define FLUSH_TIMEOUT_MS 2000           /* at the end, wait at most this long for slow clients */
#define EXIT_SETUP 125                  /* sync-fd code for failures of the monitor itself */
#define START_TIMEOUT_MS 60000          /* exec mode: give up if `start` does not come */

/* ------------------------------------------------------------------ options */

static struct {
	const char *id, *bundle, *state_dir, *runtime, *runtime_root, *log_path;
	const char *process; /* --exec: the process.json for `runc exec --process` */
	int exec;
	long long log_max_size; /* 0 = no rotation */
	int log_max_files;
	int tty, stdin_open, stdin_once;
	int sync_fd;
} opt = { .log_max_files = 1, .sync_fd = -1 };

/* ------------------------------------------------------------------ helpers */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 with nanoseconds, UTC: 2024-01-02T03:04:05.123456789Z */
static void fmt_now(char out[TS_LEN])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, TS_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

/* Writes everything to a blocking fd (files, the sync pipe). */
static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A byte queue: data lives in p[off, len). Large idle buffers are given back. */
struct buf {
	char *p;
	size_t off, len, cap;
};

static size_t buf_used(const struct buf *b) { return b->len - b->off; }
static char *buf_data(const struct buf *b) { return b->p + b->off; }

static int buf_reserve(struct buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return 0;
	}
	size_t nc = b->cap ? b->cap : 1024;
	while (nc - b->len < n)
		nc *= 2;
	char *np = realloc(b->p, nc);
	if (!np)
		return -1;
	b->p = np;
	b->cap = nc;
	return 0;
}

static int buf_append(struct buf *b, const void *d, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len) {
		b->off = b->len = 0;
		if (b->cap > 64 * 1024)
			buf_free(b);
	}
}

/* ------------------------------------------------------------------ state */

enum phase { PH_CREATE, PH_RUNNING, PH_DRAIN };

struct stream {
	int fd;      /* read end of the pipe, or the pty master; -1 once at EOF */
	int kind;    /* 1 = stdout, 2 = stderr (stdcopy stream ids and log stream names) */
	char *part;  /* the unfinished last line, MAX_LINE bytes once allocated */
	size_t plen;
};

struct client {
	int fd;
	int ctl;     /* 1 = ctl.sock client, 0 = attach.sock client */
	int rd_open; /* we still read from it (it has not shut down its write side) */
	int dead;
	struct buf out;
	char line[256];
	size_t llen;
	int overlong;
	struct client *next;
};

static enum phase phase = PH_CREATE;
static int dirfd_state = -1;
static int sig_fd = -1;
static int attach_lfd = -1, ctl_lfd = -1;
static int console_lfd = -1, console_cfd = -1;
static char console_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char console_tmpdir[64];
static int pty_master = -1;
static struct winsize pending_ws;
static int have_pending_ws;
static struct stream streams[2] = { { -1, 1, NULL, 0 }, { -1, 2, NULL, 0 } };
static int capture_fd = -1; /* runc create's stderr (same fd as streams[1] without a tty) */
static struct buf capture;
static struct client *clients;
static int nclients;
static int accept_paused; /* out of fds or at MAX_CLIENTS: stop polling the listeners for now */
static pid_t runc_pid = -1, init_pid = -1;
static int runc_status, runc_done;
static int init_status, init_done;
static char exited_at[TS_LEN];
static int64_t drain_deadline;
static int64_t start_deadline; /* exec mode, until `start` */
static struct {
	pid_t pid;
	int status;
	char at[TS_LEN];
} early[16]; /* children reaped before we knew the init pid */
static int nearly;
static unsigned char rbuf[READ_CHUNK];

static struct {
	int fd; /* write end of the stdin pipe, or the pty master */
	struct buf q;
	int close_req, closed;
	unsigned char last;
} in = { .fd = -1 };

static struct {
	int fd;
	long long size; /* bytes in the current file, counting what is still buffered */
	struct buf out;
} lg = { .fd = -1 };

/* ------------------------------------------------------------------ sync fd */

/* Exec mode's first line (`ready`): written without closing the fd. */
static void sync_line(const char *line)
{
	if (opt.sync_fd >= 0)
		write_all(opt.sync_fd, line, strlen(line));
}

static void sync_send(const char *line)
{
	if (opt.sync_fd < 0)
		return;
	write_all(opt.sync_fd, line, strlen(line)); /* EPIPE if the caller died: fine */
	close(opt.sync_fd);
	opt.sync_fd = -1;
}

/* error <code> <message>: the message on one line, without trailing blanks */
static void sync_error(int code, const char *fmt, ...)
{
	char msg[4096], line[4200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	size_t n = strlen(msg);
	while (n > 0 && msg[n - 1] == ' ')
		msg[--n] = 0;
	snprintf(line, sizeof(line), "error %d %s\n", code, n ? msg : "unknown error");
	sync_send(line);
}

/* ------------------------------------------------------------------ json-file log */

static int log_open(int trunc)
{
	lg.fd = open(opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0640);
	if (lg.fd < 0)
		return -1;
	struct stat st;
	lg.size = fstat(lg.fd, &st) == 0 ? st.st_size : 0;
	return 0;
}

/* Writes the first n buffered bytes to the current file. Errors lose log lines, never the container. */
static void log_write_out(size_t n)
{
	if (lg.fd >= 0 && n > 0)
		write_all(lg.fd, buf_data(&lg.out), n);
	buf_consume(&lg.out, n);
}

static void log_flush(void) { log_write_out(buf_used(&lg.out)); }

/* PATH -> PATH.1 -> ... -> PATH.(max_files-1); the oldest is deleted. max_files 1 truncates. */
static void log_rotate(void)
{
	if (opt.log_max_files <= 1) {
		if (lg.fd >= 0 && ftruncate(lg.fd, 0) == 0) {
			lg.size = 0;
			return;
		}
	} else {
		size_t n = strlen(opt.log_path) + 16;
		char *a = malloc(n), *b = malloc(n);
		if (a && b) {
			snprintf(a, n, "%s.%d", opt.log_path, opt.log_max_files - 1);
			unlink(a);
			for (int i = opt.log_max_files - 2; i >= 1; i--) {
				snprintf(a, n, "%s.%d", opt.log_path, i);
				snprintf(b, n, "%s.%d", opt.log_path, i + 1);
				rename(a, b); /* ENOENT: fewer files exist yet */
			}
			snprintf(b, n, "%s.1", opt.log_path);
			rename(opt.log_path, b);
		}
		free(a);
		free(b);
	}
	if (lg.fd >= 0)
		close(lg.fd);
	if (log_open(1) < 0)
		lg.size = 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s[0] starts no valid sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t len = c >= 0xF5 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
	if (len == 0 || n < len)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || /* overlong, surrogates */
	    (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))   /* overlong, > U+10FFFF */
		return 0;
	return len;
}

/* Appends s as the body of a JSON string: valid UTF-8 passes, invalid bytes become U+FFFD. */
static int json_escape(struct buf *b, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, n * 6 + 1) < 0)
		return -1;
	char *o = b->p + b->len;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c < 0x80) {
			*o++ = '\\';
			switch (c) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			default:
				memcpy(o, "u00", 3);
				o += 3;
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
			}
			i++;
			continue;
		}
		size_t l = utf8_seq(s + i, n - i);
		if (l == 0) {
			memcpy(o, "\\ufffd", 6);
			o += 6;
			i++;
		} else if (l == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] & 0xFE) == 0xA8) {
			memcpy(o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6); /* as Go's encoder does */
			o += 6;
			i += 3;
		} else {
			memcpy(o, s + i, l);
			o += l;
			i += l;
		}
	}
	b->len = (size_t)(o - b->p);
	return 0;
}

/* One json-file line: {"log":"...","stream":"stdout","time":"..."} */
static void log_entry(int kind, const char *d, size_t n, const char *ts)
{
	if (!opt.log_path)
		return; /* exec mode without --log: output only goes to attach clients */
	if (lg.fd < 0 && log_open(0) < 0)
		return;
	size_t before = buf_used(&lg.out);
	static const char head[] = "{\"log\":\"";
	char tail[160];
	int tl = snprintf(tail, sizeof(tail), "\",\"stream\":\"%s\",\"time\":\"%s\"}\n",
			  kind == 2 ? "stderr" : "stdout", ts);
	if (buf_append(&lg.out, head, sizeof(head) - 1) < 0 || json_escape(&lg.out, (const unsigned char *)d, n) < 0 ||
	    buf_append(&lg.out, tail, (size_t)tl) < 0) {
		lg.out.len = lg.out.off + before; /* out of memory: drop this line */
		return;
	}
	size_t elen = buf_used(&lg.out) - before;
	if (opt.log_max_size > 0 && lg.size > 0 && lg.size + (long long)elen > opt.log_max_size) {
		log_write_out(before);
		log_rotate();
	}
	lg.size += (long long)elen;
	if (buf_used(&lg.out) >= LOG_FLUSH_AT)
		log_flush();
}

/* Where to cut a full line buffer so that no UTF-8 sequence is split across two entries. */
static size_t utf8_cut(const unsigned char *p, size_t n)
{
	for (size_t k = 1; k <= 3 && k < n; k++) {
		unsigned char c = p[n - k];
		if ((c & 0xC0) == 0x80)
			continue;
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		return need > k ? n - k : n;
	}
	return n;
}

/* Splits output into lines: one log entry per line, a partial line waits for more. */
static void log_data(struct stream *s, const char *d, size_t n, const char *ts)
{
	while (n > 0) {
		const char *nl = memchr(d, '\n', n);
		size_t seg = nl ? (size_t)(nl - d) + 1 : n;
		if (s->plen == 0 && nl && seg <= MAX_LINE) {
			log_entry(s->kind, d, seg, ts);
			d += seg;
			n -= seg;
			continue;
		}
		if (!s->part && !(s->part = malloc(MAX_LINE))) {
			log_entry(s->kind, d, n, ts); /* out of memory: no line assembly */
			return;
		}
		size_t space = MAX_LINE - s->plen;
		size_t take = seg < space ? seg : space;
		memcpy(s->part + s->plen, d, take);
		s->plen += take;
		d += take;
		n -= take;
		if (nl && take == seg) {
			log_entry(s->kind, s->part, s->plen, ts);
			s->plen = 0;
		} else if (s->plen == MAX_LINE) {
			size_t cut = utf8_cut((unsigned char *)s->part, MAX_LINE);
			log_entry(s->kind, s->part, cut, ts);
			memmove(s->part, s->part + cut, MAX_LINE - cut);
			s->plen = MAX_LINE - cut;
		}
	}
}

static void log_stream_end(struct stream *s)
{
	if (s->plen > 0) {
		char ts[TS_LEN];
		fmt_now(ts);
		log_entry(s->kind, s->part, s->plen, ts);
		s->plen = 0;
	}
	free(s->part);
	s->part = NULL;
}

/* ------------------------------------------------------------------ clients */

static void client_kill(struct client *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	close(c->fd);
	c->fd = -1;
	buf_free(&c->out);
}

static void client_flush(struct client *c)
{
	while (!c->dead && buf_used(&c->out) > 0) {
		ssize_t w = send(c->fd, buf_data(&c->out), buf_used(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			buf_consume(&c->out, (size_t)w);
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			client_kill(c);
	}
}

/* Output chunk to every attach client as a stdcopy frame: [stream,0,0,0,size BE32] payload. */
static void broadcast(int kind, const char *d, size_t n)
{
	unsigned char hdr[8] = { (unsigned char)kind, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				 (unsigned char)(n >> 8), (unsigned char)n };
	for (struct client *c = clients; c; c = c->next) {
		if (c->dead || c->ctl)
			continue;
		if (buf_used(&c->out) + sizeof(hdr) + n > CLIENT_MAX_BUF || buf_append(&c->out, hdr, sizeof(hdr)) < 0 ||
		    buf_append(&c->out, d, n) < 0) {
			client_kill(c); /* too slow: never let one client hold up the container */
			continue;
		}
		client_flush(c);
	}
}

static void sweep_clients(void)
{
	struct client **pp = &clients;
	while (*pp) {
		struct client *c = *pp;
		if (c->dead) {
			*pp = c->next;
			free(c);
			nclients--;
			accept_paused = 0;
		} else {
			pp = &c->next;
		}
	}
}

static void accept_clients(int lfd, int ctl)
{
	while (nclients < MAX_CLIENTS) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				accept_paused = 1; /* EMFILE and friends: retry once a client has gone */
			return;
		}
		struct client *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			accept_paused = 1;
			return;
		}
		c->fd = fd;
		c->ctl = ctl;
		c->rd_open = 1;
		c->next = clients;
		clients = c;
		nclients++;
	}
	accept_paused = 1;
}

/* ------------------------------------------------------------------ stdin */

static int stdin_accepting(void) { return opt.stdin_open && !in.closed && !in.close_req; }

static void stdin_dead(void)
{
	buf_free(&in.q);
	if (!opt.tty && in.fd >= 0)
		close(in.fd);
	if (!opt.tty)
		in.fd = -1;
	in.closed = 1;
}

/* Without a tty: close the pipe (EOF). With a tty: send VEOF, twice if a line is pending. */
static void stdin_do_close(void)
{
	if (in.closed)
		return;
	if (opt.tty) {
		if (in.fd >= 0) {
			struct termios t;
			unsigned char eof[2];
			eof[0] = eof[1] = (tcgetattr(in.fd, &t) == 0 && t.c_cc[VEOF]) ? t.c_cc[VEOF] : 4;
			size_t n = (in.last && in.last != '\n' && in.last != '\r') ? 2 : 1;
			if (write(in.fd, eof, n) < 0) { /* nothing more to do */
			}
		}
		buf_free(&in.q);
		in.closed = 1;
	} else {
		stdin_dead();
	}
}

static void stdin_flush(void)
{
	while (in.fd >= 0 && !in.closed && buf_used(&in.q) > 0) {
		ssize_t w = write(in.fd, buf_data(&in.q), buf_used(&in.q));
		if (w > 0) {
			in.last = (unsigned char)buf_data(&in.q)[w - 1];
			buf_consume(&in.q, (size_t)w);
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		} else {
			stdin_dead(); /* EPIPE / EIO: nobody reads stdin any more */
			return;
		}
	}
	if (in.close_req && buf_used(&in.q) == 0 && (in.fd >= 0 || !opt.tty))
		stdin_do_close();
}

static void stdin_request_close(void)
{
	if (in.closed)
		return;
	in.close_req = 1;
	stdin_flush();
}

/* --stdin-once: the last attach client with an open write side has shut it down. */
static void maybe_stdin_once(void)
{
	if (!opt.stdin_once || !opt.stdin_open || in.closed || in.close_req)
		return;
	for (struct client *c = clients; c; c = c->next)
		if (!c->dead && !c->ctl && c->rd_open)
			return;
	stdin_request_close();
}

/* ------------------------------------------------------------------ control */

static void apply_winsize(void)
{
	if (pty_master >= 0 && have_pending_ws) {
		ioctl(pty_master, TIOCSWINSZ, &pending_ws);
		have_pending_ws = 0;
	}
}

static int launch_runc(void);
static pid_t runc_pid_get(void);

static void ctl_reply(struct client *c, const char *s)
{
	if (buf_used(&c->out) + strlen(s) > 64 * 1024 || buf_append(&c->out, s, strlen(s)) < 0) {
		client_kill(c);
		return;
	}
	client_flush(c);
}

static void ctl_command(struct client *c, char *line)
{
	unsigned rows, cols;
	char extra;
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	if (n == 0)
		return;
	if (strncmp(line, "resize ", 7) == 0) {
		if (sscanf(line + 7, "%u %u %c", &rows, &cols, &extra) != 2 || rows > 65535 || cols > 65535) {
			ctl_reply(c, "error usage: resize <rows> <cols>\n");
		} else if (!opt.tty) {
			ctl_reply(c, "error not a tty\n");
		} else {
			memset(&pending_ws, 0, sizeof(pending_ws));
			pending_ws.ws_row = (unsigned short)rows;
			pending_ws.ws_col = (unsigned short)cols;
			have_pending_ws = 1;
			apply_winsize(); /* or as soon as the pty master arrives */
			ctl_reply(c, "ok\n");
		}
	} else if (strcmp(line, "close-stdin") == 0) {
		stdin_request_close();
		ctl_reply(c, "ok\n");
	} else if (strcmp(line, "start") == 0) {
		if (!opt.exec || runc_pid_get() >= 0) {
			ctl_reply(c, "error already started\n");
		} else {
			launch_runc();
			ctl_reply(c, "ok\n");
		}
	} else if (strcmp(line, "ping") == 0) {
		ctl_reply(c, "ok\n");
	} else {
		ctl_reply(c, "error unknown command\n");
	}
}

static void ctl_input(struct client *c, const char *d, size_t n)
{
	for (size_t i = 0; i < n && !c->dead; i++) {
		if (d[i] == '\n') {
			c->line[c->llen] = 0;
			if (c->overlong)
				ctl_reply(c, "error line too long\n");
			else
				ctl_command(c, c->line);
			c->llen = 0;
			c->overlong = 0;
		} else if (c->llen < sizeof(c->line) - 1) {
			c->line[c->llen++] = d[i];
		} else {
			c->overlong = 1;
		}
	}
}

static void client_readable(struct client *c)
{
	ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
	if (r < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			client_kill(c);
		return;
	}
	if (r == 0) {
		c->rd_open = 0;
		if (c->ctl) {
			client_flush(c);
			client_kill(c);
		} else {
			maybe_stdin_once();
		}
		return;
	}
	if (c->ctl) {
		ctl_input(c, (char *)rbuf, (size_t)r);
	} else if (stdin_accepting()) {
		if (buf_append(&in.q, rbuf, (size_t)r) == 0)
			stdin_flush();
	} /* else: stdin is not open; the bytes are dropped */
}

/* ------------------------------------------------------------------ output */

static void on_output(struct stream *s, const char *d, size_t n)
{
	char ts[TS_LEN];
	fmt_now(ts);
	broadcast(s->kind, d, n);
	log_data(s, d, n, ts);
	log_flush();
}

static void stream_close(struct stream *s)
{
	if (s->fd < 0)
		return;
	if (s->fd != pty_master)
		close(s->fd);
	s->fd = -1;
	log_stream_end(s);
	log_flush();
}

/* One read; returns 1 if data was read. EOF, or EIO on a pty whose slave is gone, ends the stream. */
static int stream_readable(struct stream *s)
{
	ssize_t r = read(s->fd, rbuf, sizeof(rbuf));
	if (r > 0) {
		on_output(s, (char *)rbuf, (size_t)r);
		return 1;
	}
	if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	stream_close(s);
	return 0;
}

static void capture_readable(void)
{
	ssize_t r = read(capture_fd, rbuf, sizeof(rbuf));
	if (r > 0) {
		size_t n = (size_t)r;
		if (buf_used(&capture) < CAPTURE_MAX)
			buf_append(&capture, rbuf, n < CAPTURE_MAX - buf_used(&capture) ? n : CAPTURE_MAX - buf_used(&capture));
	} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
		if (opt.tty) { /* the dedicated pipe; without a tty it is the container's stderr */
			close(capture_fd);
		} else {
			stream_close(&streams[1]);
		}
		capture_fd = -1;
	}
}

/* ------------------------------------------------------------------ console socket (tty) */

static void console_close(void)
{
	if (console_cfd >= 0)
		close(console_cfd);
	if (console_lfd >= 0)
		close(console_lfd);
	console_cfd = console_lfd = -1;
	if (console_path[0]) {
		unlink(console_path);
		console_path[0] = 0;
	}
	if (console_tmpdir[0]) {
		rmdir(console_tmpdir);
		console_tmpdir[0] = 0;
	}
}

/* runc connects to the console socket and sends the pty master with SCM_RIGHTS. */
static void console_readable(void)
{
	if (console_cfd < 0) {
		console_cfd = accept4(console_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (console_cfd < 0)
			return;
	}
	char data[512];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { 0 };
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = sizeof(u.b);
	ssize_t r = recvmsg(console_cfd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int fds[4];
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)(nfd > 4 ? 4 : nfd));
		for (int i = 0; i < nfd && i < 4; i++) {
			if (pty_master < 0)
				pty_master = fds[i];
			else
				close(fds[i]);
		}
	}
	if (pty_master >= 0) {
		set_nonblock(pty_master);
		streams[0].fd = pty_master;
		in.fd = pty_master;
		apply_winsize();
		console_close();
		stdin_flush();
	} else {
		close(console_cfd); /* a connection without an fd: wait for the next one */
		console_cfd = -1;
	}
}

/* ------------------------------------------------------------------ children */

static void note_exit(pid_t pid, int status)
{
	if (pid == runc_pid) {
		runc_status = status;
		runc_done = 1;
	} else if (init_pid > 0 && pid == init_pid) {
		if (!init_done) {
			init_status = status;
			init_done = 1;
			fmt_now(exited_at);
		}
	} else if (init_pid <= 0 && nearly < (int)(sizeof(early) / sizeof(early[0]))) {
		early[nearly].pid = pid;
		early[nearly].status = status;
		fmt_now(early[nearly].at);
		nearly++;
	}
}

static void reap(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) > 0) {
	}
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0)
			return;
		note_exit(p, st);
	}
}

static pid_t runc_pid_get(void) { return runc_pid; }

static int status_code(int st) { return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st); }

/* ------------------------------------------------------------------ setup */

static void cleanup_sockets(void)
{
	if (attach_lfd >= 0)
		close(attach_lfd);
	if (ctl_lfd >= 0)
		close(ctl_lfd);
	attach_lfd = ctl_lfd = -1;
	unlinkat(dirfd_state, "attach.sock", 0);
	unlinkat(dirfd_state, "ctl.sock", 0);
	console_close();
}

static void die_setup(int code, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sync_error(code, "%s", msg);
	cleanup_sockets();
	exit(1);
}

/* Listens on a unix socket with mode 0600. A path too long for sun_path is bound through
 * /proc/self/fd/<dirfd>/NAME so that a deep state dir still works. */
static int listen_unix(const char *abs_path, const char *name_in_state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (name_in_state) {
		unlinkat(dirfd_state, name_in_state, 0);
		if (strlen(abs_path) < sizeof(sa.sun_path))
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", abs_path);
		else
			snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd_state, name_in_state);
	} else {
		unlink(abs_path);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", abs_path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static char *state_path(const char *name)
{
	size_t n = strlen(opt.state_dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		die_setup(EXIT_SETUP, "out of memory");
	snprintf(p, n, "%s/%s", opt.state_dir, name);
	return p;
}

/* tmp + rename: readers see the whole file or none. No fsync: these files matter while the host
 * is up (a daemon crash loses no page cache), and a power loss ends the container with them; the
 * two fsyncs cost more than the rest of a container's start-up. */
static int write_state_file(const char *name, const char *content)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(dirfd_state, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write_all(fd, content, strlen(content)) < 0) {
		close(fd);
		unlinkat(dirfd_state, tmp, 0);
		return -1;
	}
	close(fd);
	if (renameat(dirfd_state, tmp, dirfd_state, name) < 0)
		return -1;
	return 0;
}

static void daemonize(void)
{
	pid_t p = fork();
	if (p < 0)
		die_setup(EXIT_SETUP, "fork: %s", strerror(errno));
	if (p > 0) {
		/* The invoking process returns as soon as the monitor is detached; the caller
		 * learns the outcome of `runc create` from the sync fd. */
		int st = 0;
		while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
		}
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
	}
	if (setsid() < 0)
		die_setup(EXIT_SETUP, "setsid: %s", strerror(errno));
	p = fork();
	if (p < 0)
		die_setup(EXIT_SETUP, "fork: %s", strerror(errno));
	if (p > 0)
		_exit(0);
	int nul = open("/dev/null", O_RDWR); /* fds 0-2: no CLOEXEC, runc gets them in tty mode */
	if (nul < 0)
		die_setup(EXIT_SETUP, "open /dev/null: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		if (nul != i)
			dup2(nul, i);
	if (nul > 2)
		close(nul);
	if (chdir("/") < 0) { /* cannot happen */
	}
}

static pid_t spawn_runc(int fd0, int fd1, int fd2)
{
	char *init_pid_path = state_path("init.pid");
	char *runc_log = state_path("runc.log");
	const char *argv[20];
	int a = 0;
	argv[a++] = opt.runtime;
	argv[a++] = "--root";
	argv[a++] = opt.runtime_root;
	argv[a++] = "--log";
	argv[a++] = runc_log;
	argv[a++] = "--log-format";
	argv[a++] = "json";
	if (opt.exec) {
		argv[a++] = "exec";
		argv[a++] = "--process";
		argv[a++] = opt.process;
		argv[a++] = "--detach";
	} else {
		argv[a++] = "create";
		argv[a++] = "--bundle";
		argv[a++] = opt.bundle;
	}
	argv[a++] = "--pid-file";
	argv[a++] = init_pid_path;
	if (opt.tty) {
		argv[a++] = "--console-socket";
		argv[a++] = console_path;
	}
	argv[a++] = opt.id;
	argv[a] = NULL;

	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL); /* an ignored SIGPIPE would be inherited by the container */
		/* Every other fd of ours is O_CLOEXEC; these three are all runc (and the container) get. */
		if ((fd0 != 0 && dup2(fd0, 0) < 0) || (fd1 != 1 && dup2(fd1, 1) < 0) || (fd2 != 2 && dup2(fd2, 2) < 0))
			_exit(126);
		execv(opt.runtime, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", opt.runtime, strerror(errno));
		_exit(127);
	}
	free(init_pid_path);
	free(runc_log);
	return pid;
}

/* The stdio runc gets, kept until it is launched (at once, or at `start` in exec mode). */
static struct {
	int fds[3], child_fds[3];
} gate;

static int launch_runc(void)
{
	runc_pid = spawn_runc(gate.fds[0], gate.fds[1], gate.fds[2]);
	if (runc_pid < 0)
		die_setup(EXIT_SETUP, "fork: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		if (gate.child_fds[i] >= 0)
			close(gate.child_fds[i]);
	return 0;
}

static void setup_and_create(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die_setup(EXIT_SETUP, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	dirfd_state = open(opt.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_state < 0)
		die_setup(EXIT_SETUP, "open state dir %s: %s", opt.state_dir, strerror(errno));
	unlinkat(dirfd_state, "exit.json", 0); /* a previous run's results must not be mistaken for ours */
	unlinkat(dirfd_state, "init.pid", 0);

	char pidline[32];
	snprintf(pidline, sizeof(pidline), "%d\n", (int)getpid());
	if (write_state_file("monitor.pid", pidline) < 0)
		die_setup(EXIT_SETUP, "write monitor.pid: %s", strerror(errno));
	if (opt.log_path && log_open(0) < 0)
		die_setup(EXIT_SETUP, "open log %s: %s", opt.log_path, strerror(errno));

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		die_setup(EXIT_SETUP, "signalfd: %s", strerror(errno));

	char *p = state_path("attach.sock");
	if ((attach_lfd = listen_unix(p, "attach.sock")) < 0)
		die_setup(EXIT_SETUP, "listen %s: %s", p, strerror(errno));
	free(p);
	p = state_path("ctl.sock");
	if ((ctl_lfd = listen_unix(p, "ctl.sock")) < 0)
		die_setup(EXIT_SETUP, "listen %s: %s", p, strerror(errno));
	free(p);

	int fd0 = 0, fd1 = 1, fd2 = 2, pp[2];
	int child_fds[3] = { -1, -1, -1 };
	if (opt.tty) {
		/* runc needs an absolute path it can dial; fall back to a short private dir. */
		p = state_path("console.sock");
		if (strlen(p) < sizeof(console_path)) {
			snprintf(console_path, sizeof(console_path), "%s", p);
		} else {
			snprintf(console_tmpdir, sizeof(console_tmpdir), "/tmp/berth-console-XXXXXX");
			if (!mkdtemp(console_tmpdir))
				die_setup(EXIT_SETUP, "mkdtemp: %s", strerror(errno));
			snprintf(console_path, sizeof(console_path), "%s/c.sock", console_tmpdir);
		}
		free(p);
		if ((console_lfd = listen_unix(console_path, NULL)) < 0)
			die_setup(EXIT_SETUP, "listen %s: %s", console_path, strerror(errno));
		if (pipe2(pp, O_CLOEXEC) < 0)
			die_setup(EXIT_SETUP, "pipe: %s", strerror(errno));
		capture_fd = pp[0];
		fd2 = child_fds[0] = pp[1];
	} else {
		if (pipe2(pp, O_CLOEXEC) < 0)
			die_setup(EXIT_SETUP, "pipe: %s", strerror(errno));
		streams[0].fd = pp[0];
		fd1 = child_fds[0] = pp[1];
		if (pipe2(pp, O_CLOEXEC) < 0)
			die_setup(EXIT_SETUP, "pipe: %s", strerror(errno));
		streams[1].fd = capture_fd = pp[0];
		fd2 = child_fds[1] = pp[1];
		if (opt.stdin_open) {
			if (pipe2(pp, O_CLOEXEC) < 0)
				die_setup(EXIT_SETUP, "pipe: %s", strerror(errno));
			fd0 = child_fds[2] = pp[0];
			in.fd = pp[1];
		}
		set_nonblock(streams[0].fd);
		set_nonblock(streams[1].fd);
		if (in.fd >= 0)
			set_nonblock(in.fd);
	}
	if (capture_fd >= 0)
		set_nonblock(capture_fd);

	memcpy(gate.fds, (int[]){ fd0, fd1, fd2 }, sizeof(gate.fds));
	memcpy(gate.child_fds, child_fds, sizeof(gate.child_fds));
	if (opt.exec) {
		/* Wait for `start` on ctl.sock, so that attach clients connect before the process runs. */
		sync_line("ready\n");
		start_deadline = mono_ms() + START_TIMEOUT_MS;
		return;
	}
	launch_runc();
}

/* runc create has exited: report on the sync fd, or give up. */
static void create_finished(void)
{
	while (capture_fd >= 0 && buf_used(&capture) < CAPTURE_MAX) {
		ssize_t before = (ssize_t)buf_used(&capture);
		int fd = capture_fd;
		capture_readable();
		if (capture_fd != fd || (ssize_t)buf_used(&capture) == before)
			break;
	}
	if (!WIFEXITED(runc_status) || WEXITSTATUS(runc_status) != 0) {
		buf_append(&capture, "", 1);
		char *msg = buf_data(&capture);
		while (*msg == ' ' || *msg == '\n')
			msg++;
		if (!*msg)
			die_setup(status_code(runc_status), "runc create failed with status %d (see %s/runc.log)",
				  status_code(runc_status), opt.state_dir);
		die_setup(status_code(runc_status), "%s", msg);
	}
	if (opt.tty && pty_master < 0 && console_lfd >= 0)
		console_readable(); /* runc sent it before exiting; it waits in the backlog */
	if (opt.tty && pty_master < 0)
		die_setup(EXIT_SETUP, "runc create did not send a pty master on the console socket");

	char pbuf[32] = { 0 };
	int fd = openat(dirfd_state, "init.pid", O_RDONLY | O_CLOEXEC);
	ssize_t r = fd >= 0 ? read(fd, pbuf, sizeof(pbuf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	long v = r > 0 ? strtol(pbuf, NULL, 10) : 0;
	if (v <= 0)
		die_setup(EXIT_SETUP, "cannot read %s/init.pid", opt.state_dir);
	init_pid = (pid_t)v;
	for (int i = 0; i < nearly; i++) {
		if (early[i].pid == init_pid) {
			init_status = early[i].status;
			init_done = 1;
			memcpy(exited_at, early[i].at, sizeof(exited_at));
		}
	}
	if (!init_done) {
		int st;
		pid_t w = waitpid(init_pid, &st, WNOHANG);
		if (w == init_pid)
			note_exit(w, st);
		else if (w < 0)
			die_setup(EXIT_SETUP, "container init %d is not a child of the monitor: %s", (int)init_pid,
				  strerror(errno));
	}

	if (opt.tty) {
		if (capture_fd >= 0)
			close(capture_fd); /* runc's own stderr; the container writes to the pty */
		capture_fd = -1;
	} else {
		capture_fd = -1; /* from now on streams[1] is the container's stderr */
		if (buf_used(&capture) > 0)
			on_output(&streams[1], buf_data(&capture), buf_used(&capture));
	}
	buf_free(&capture);

	char line[64];
	snprintf(line, sizeof(line), "ok %d\n", (int)init_pid);
	sync_send(line);
	phase = PH_RUNNING;
}

static void finish(void)
{
	/* Whatever is still readable right now (drain deadline hit). */
	for (int i = 0; i < 2; i++) {
		int guard = 64;
		while (streams[i].fd >= 0 && guard-- > 0 && stream_readable(&streams[i])) {
		}
		stream_close(&streams[i]);
	}
	log_flush();
	if (lg.fd >= 0)
		close(lg.fd);

	char js[256];
	int code = status_code(init_status);
	int sig = WIFSIGNALED(init_status) ? WTERMSIG(init_status) : 0;
	snprintf(js, sizeof(js), "{\"exit_code\":%d,\"signal\":%d,\"exited_at\":\"%s\"}\n", code, sig, exited_at);
	write_state_file("exit.json", js);

	cleanup_sockets();
	if (in.fd >= 0 && in.fd != pty_master)
		close(in.fd);
	in.fd = -1;
	if (pty_master >= 0)
		close(pty_master);

	/* Give attach clients the last frames, then hang up. */
	int64_t deadline = mono_ms() + FLUSH_TIMEOUT_MS;
	for (;;) {
		struct pollfd pf[MAX_CLIENTS];
		int n = 0;
		for (struct client *c = clients; c && n < MAX_CLIENTS; c = c->next) {
			if (!c->dead && !c->ctl && buf_used(&c->out) > 0) {
				pf[n].fd = c->fd;
				pf[n].events = POLLOUT;
				n++;
			}
		}
		int64_t left = deadline - mono_ms();
		if (n == 0 || left <= 0)
			break;
		if (poll(pf, (nfds_t)n, (int)left) < 0 && errno != EINTR)
			break;
		for (struct client *c = clients; c; c = c->next)
			if (!c->dead && !c->ctl)
				client_flush(c);
	}
	for (struct client *c = clients; c; c = c->next)
		client_kill(c);
	exit(0);
}

/* ------------------------------------------------------------------ main loop */

enum slot_type { SL_SIG, SL_STREAM0, SL_STREAM1, SL_CAPTURE, SL_STDIN, SL_CONSOLE, SL_ATTACH_L, SL_CTL_L, SL_CLIENT };

static void run(void)
{
	struct pollfd *pf = NULL;
	struct {
		enum slot_type t;
		struct client *c;
	} *sl = NULL;
	size_t cap = 0;

	for (;;) {
		size_t need = 8 + (size_t)nclients;
		if (need > cap) {
			cap = need * 2;
			pf = realloc(pf, cap * sizeof(*pf));
			sl = realloc(sl, cap * sizeof(*sl));
			if (!pf || !sl)
				abort();
		}
		nfds_t n = 0;
#define ADD(fd_, ev_, t_, c_)                                                                                          \
	do {                                                                                                           \
		pf[n].fd = (fd_);                                                                                      \
		pf[n].events = (short)(ev_);                                                                           \
		pf[n].revents = 0;                                                                                     \
		sl[n].t = (t_);                                                                                        \
		sl[n].c = (c_);                                                                                        \
		n++;                                                                                                   \
	} while (0)
		ADD(sig_fd, POLLIN, SL_SIG, NULL);
		int want_stdin_out = in.fd >= 0 && !in.closed && buf_used(&in.q) > 0;
		if (phase != PH_CREATE) {
			if (streams[0].fd >= 0)
				ADD(streams[0].fd, POLLIN | (opt.tty && want_stdin_out ? POLLOUT : 0), SL_STREAM0, NULL);
			if (streams[1].fd >= 0)
				ADD(streams[1].fd, POLLIN, SL_STREAM1, NULL);
		} else if (capture_fd >= 0) {
			ADD(capture_fd, POLLIN, SL_CAPTURE, NULL);
		}
		if (want_stdin_out && (!opt.tty || phase == PH_CREATE))
			ADD(in.fd, POLLOUT, SL_STDIN, NULL);
		if (console_lfd >= 0)
			ADD(console_cfd >= 0 ? console_cfd : console_lfd, POLLIN, SL_CONSOLE, NULL);
		if (attach_lfd >= 0 && !accept_paused)
			ADD(attach_lfd, POLLIN, SL_ATTACH_L, NULL);
		if (ctl_lfd >= 0 && !accept_paused)
			ADD(ctl_lfd, POLLIN, SL_CTL_L, NULL);
		for (struct client *c = clients; c; c = c->next) {
			if (c->dead)
				continue;
			short ev = 0;
			if (c->rd_open && (c->ctl || !stdin_accepting() || buf_used(&in.q) < STDIN_MAX_BUF))
				ev |= POLLIN;
			if (buf_used(&c->out) > 0)
				ev |= POLLOUT;
			ADD(c->fd, ev, SL_CLIENT, c);
		}
#undef ADD

		int timeout = -1;
		if (phase == PH_DRAIN) {
			int64_t left = drain_deadline - mono_ms();
			timeout = left > 0 ? (int)left : 0;
		} else if (phase == PH_CREATE && opt.exec && runc_pid < 0) {
			int64_t left = start_deadline - mono_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		int r = poll(pf, n, timeout);
		if (r < 0) {
			if (errno != EINTR) { /* ENOMEM: back off briefly rather than give up the container */
				struct timespec ts = { 0, 10 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
			continue;
		}

		for (nfds_t i = 0; i < n; i++) {
			short re = pf[i].revents;
			if (!re)
				continue;
			struct client *c = sl[i].c;
			switch (sl[i].t) {
			case SL_SIG:
				reap();
				break;
			case SL_STREAM0:
				if (opt.tty && (re & POLLOUT))
					stdin_flush();
				if (re & (POLLIN | POLLHUP | POLLERR))
					stream_readable(&streams[0]);
				break;
			case SL_STREAM1:
				stream_readable(&streams[1]);
				break;
			case SL_CAPTURE:
				capture_readable();
				break;
			case SL_STDIN:
				stdin_flush();
				break;
			case SL_CONSOLE:
				console_readable();
				break;
			case SL_ATTACH_L:
				accept_clients(attach_lfd, 0);
				break;
			case SL_CTL_L:
				accept_clients(ctl_lfd, 1);
				break;
			case SL_CLIENT:
				if (c->dead)
					break;
				if (re & POLLOUT)
					client_flush(c);
				if (!c->dead && (re & (POLLIN | POLLERR)) && c->rd_open)
					client_readable(c);
				else if (!c->dead && (re & (POLLHUP | POLLERR)) && !(re & POLLIN)) {
					/* peer gone for good (both directions) */
					int was_reading = c->rd_open;
					c->rd_open = 0;
					client_kill(c);
					if (was_reading)
						maybe_stdin_once();
				}
				break;
			}
		}
		sweep_clients();

		if (phase == PH_CREATE && opt.exec && runc_pid < 0 && mono_ms() >= start_deadline)
			die_setup(EXIT_SETUP, "no start command within %d s", START_TIMEOUT_MS / 1000);
		if (phase == PH_CREATE && runc_done)
			create_finished();
		if (phase == PH_RUNNING && init_done) {
			phase = PH_DRAIN;
			drain_deadline = mono_ms() + DRAIN_TIMEOUT_MS;
		}
		if (phase == PH_DRAIN && ((streams[0].fd < 0 && streams[1].fd < 0) || mono_ms() >= drain_deadline))
			finish();
	}
}

/* ------------------------------------------------------------------ arguments */

static void usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "berth-monitor: %s\n", msg);
	sync_error(EXIT_SETUP, "berth-monitor: %s", msg);
	exit(2);
}

static long long parse_num(const char *name, const char *s, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage_error("invalid %s: %s", name, s);
	return v;
}

static void parse_args(int argc, char **argv)
{
	enum { OPT_ID = 1, OPT_BUNDLE, OPT_STATE, OPT_RUNTIME, OPT_RROOT, OPT_LOG, OPT_MAXSIZE, OPT_MAXFILES, OPT_TTY, OPT_STDIN, OPT_ONCE, OPT_SYNC, OPT_HELP, OPT_VERSION, OPT_EXEC, OPT_PROCESS };
	static const struct option lo[] = {
		{ "id", required_argument, 0, OPT_ID },
		{ "bundle", required_argument, 0, OPT_BUNDLE },
		{ "state-dir", required_argument, 0, OPT_STATE },
		{ "runtime", required_argument, 0, OPT_RUNTIME },
		{ "runtime-root", required_argument, 0, OPT_RROOT },
		{ "log", required_argument, 0, OPT_LOG },
		{ "log-max-size", required_argument, 0, OPT_MAXSIZE },
		{ "log-max-files", required_argument, 0, OPT_MAXFILES },
		{ "tty", no_argument, 0, OPT_TTY },
		{ "stdin", no_argument, 0, OPT_STDIN },
		{ "stdin-once", no_argument, 0, OPT_ONCE },
		{ "sync-fd", required_argument, 0, OPT_SYNC },
		{ "exec", no_argument, 0, OPT_EXEC },
		{ "process", required_argument, 0, OPT_PROCESS },
		{ "help", no_argument, 0, OPT_HELP },
		{ "version", no_argument, 0, OPT_VERSION },
		{ 0, 0, 0, 0 },
	};
	/* The sync fd first, so that every later usage error can be reported on it. */
	for (int i = 1; i < argc - 1; i++) {
		if (strcmp(argv[i], "--sync-fd") == 0) {
			char *end;
			long v = strtol(argv[i + 1], &end, 10);
			if (*argv[i + 1] && !*end && v >= 0 && v < INT_MAX && fcntl((int)v, F_GETFD) >= 0)
				opt.sync_fd = (int)v;
		}
	}
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_ID: opt.id = optarg; break;
		case OPT_BUNDLE: opt.bundle = optarg; break;
		case OPT_STATE: opt.state_dir = optarg; break;
		case OPT_RUNTIME: opt.runtime = optarg; break;
		case OPT_RROOT: opt.runtime_root = optarg; break;
		case OPT_LOG: opt.log_path = optarg; break;
		case OPT_MAXSIZE: opt.log_max_size = parse_num("--log-max-size", optarg, 0, LLONG_MAX); break;
		case OPT_MAXFILES: opt.log_max_files = (int)parse_num("--log-max-files", optarg, 1, 1000); break;
		case OPT_TTY: opt.tty = 1; break;
		case OPT_STDIN: opt.stdin_open = 1; break;
		case OPT_ONCE: opt.stdin_once = 1; break;
		case OPT_EXEC: opt.exec = 1; break;
		case OPT_PROCESS: opt.process = optarg; break;
		case OPT_SYNC:
			if (opt.sync_fd < 0)
				usage_error("invalid --sync-fd: %s", optarg);
			break;
		case OPT_HELP:
			printf("usage: berth-monitor --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR\n"
			       "                     --log PATH [--log-max-size BYTES] [--log-max-files N]\n"
			       "                     [--tty] [--stdin] [--stdin-once] [--sync-fd N]\n"
			       "       berth-monitor --exec --process FILE --id ID --state-dir DIR --runtime PATH --runtime-root DIR\n"
			       "                     [--log PATH] [--tty] [--stdin] [--stdin-once] [--sync-fd N]\n");
			exit(0);
		case OPT_VERSION:
			printf("berth-monitor %s\n", MONITOR_VERSION);
			exit(0);
		default:
			usage_error("unknown or incomplete option: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument: %s", argv[optind]);
	const struct {
		const char *name, *val;
		int path;
	} req[] = {
		{ "--id", opt.id, 0 },
		{ opt.exec ? "--process" : "--bundle", opt.exec ? opt.process : opt.bundle, 1 },
		{ "--state-dir", opt.state_dir, 1 },
		{ "--runtime", opt.runtime, 1 },
		{ "--runtime-root", opt.runtime_root, 1 },
		{ "--log", opt.log_path, 1 },
	};
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		if (opt.exec && !req[i].val && strcmp(req[i].name, "--log") == 0)
			continue; /* exec output is not logged unless asked */
		if (!req[i].val || !*req[i].val)
			usage_error("%s is required", req[i].name);
		if (req[i].path && req[i].val[0] != '/')
			usage_error("%s must be an absolute path: %s", req[i].name, req[i].val);
	}
	if (strchr(opt.id, '/'))
		usage_error("invalid --id: %s", opt.id);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);

	/* Nothing berthd leaked may reach runc or the container. Keep 0-2 and the sync fd. */
	if (opt.sync_fd >= 0 && opt.sync_fd <= 2) {
		int nfd = fcntl(opt.sync_fd, F_DUPFD_CLOEXEC, 3);
		if (nfd < 0)
			usage_error("dup sync fd: %s", strerror(errno));
		opt.sync_fd = nfd;
	}
	if (opt.sync_fd >= 0) {
		if (opt.sync_fd > 3)
			close_range(3, (unsigned)opt.sync_fd - 1, 0);
		close_range((unsigned)opt.sync_fd + 1, ~0U, 0);
		fcntl(opt.sync_fd, F_SETFD, FD_CLOEXEC);
	} else {
		close_range(3, ~0U, 0);
	}
	signal(SIGPIPE, SIG_IGN);
	umask(022);

	daemonize();
	setup_and_create();
	run();
	return 0;
}
