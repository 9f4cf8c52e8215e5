/* The syslog sink.
 *
 * Remote (server "tcp://host:port"): RFC 5424 messages with structured data
 * [daemoneye@32473 alert_id=".." rule_id=".." severity=".." pid=".."] and the
 * SPEC §6 JSON object as MSG, framed by octet counting (RFC 6587 3.4.1).
 * Plain TCP syslog has no application-level acknowledgement, so before each
 * message the connection is checked for a close by the peer, and after it the
 * sink waits (up to SYSLOG_ACK_TIMEOUT_MS) until the peer's TCP stack has
 * acknowledged every byte (SIOCOUTQ == 0): a receiver that went away makes
 * the delivery fail (and the alert is spooled) instead of vanishing.
 *
 * "tls://host:port" (port default 6514) is the same over TLS (RFC 5425): OpenSSL,
 * TLS 1.2 or newer, the server's certificate verified against the system CA
 * store (or SSL_CERT_FILE / SSL_CERT_DIR, OpenSSL's own variables), or
 * against the sink's ca_file alone, and its name checked against host; with
 * client_cert and client_key, a client certificate for mutual TLS.
 *
 * Local (no server, or "unix:PATH"): one datagram per alert to /dev/log in the
 * format syslog(3) uses (RFC 3164 header, JSON message), because the local
 * receivers (journald, rsyslog's imuxsock) parse that header and not 5424's.
 *
 * The syslog severity follows the alert's: critical->crit, high->err,
 * medium->warning, low->notice, info->info. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cleanup.h"
#include "sink.h"
#include "timeutil.h"
#include "util.h"

#define SYSLOG_DEFAULT_PORT     "514"
#define SYSLOG_TLS_PORT         "6514"
#define SYSLOG_CONNECT_TIMEOUT  5000
#define SYSLOG_ACK_TIMEOUT_MS   5000
#define SYSLOG_TLS_IO_TIMEOUT_S 2 /* per TLS read/write: bounds a stalled handshake at stop */
#define SYSLOG_MSG_MAX          (256 * 1024)
#define SYSLOG_PEN              "32473" /* RFC 5612 documentation enterprise number */

struct sink_syslog {
	int facility;
	bool remote;
	char *host;
	char *port;
	char *local_path;
	int fd;
	SSL_CTX *tls_ctx; /* tls:// only */
	SSL *ssl;
	const atomic_bool *abort;
};

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "kern", 0 },      { "user", 1 },    { "mail", 2 },    { "daemon", 3 },  { "auth", 4 },
	{ "syslog", 5 },    { "lpr", 6 },     { "news", 7 },    { "uucp", 8 },    { "cron", 9 },
	{ "authpriv", 10 }, { "ftp", 11 },    { "local0", 16 }, { "local1", 17 }, { "local2", 18 },
	{ "local3", 19 },   { "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

static const struct {
	const char *name;
	int code;
} levels[] = {
	{ "critical", 2 }, { "high", 3 }, { "medium", 4 }, { "low", 5 }, { "info", 6 },
};

static void
syslog_disconnect(struct sink_syslog *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void
syslog_close(void *state)
{
	struct sink_syslog *s = state;

	if (s == NULL)
		return;
	syslog_disconnect(s);
	SSL_CTX_free(s->tls_ctx);
	free(s->host);
	free(s->port);
	free(s->local_path);
	free(s);
}

/* Splits "host:port" or "[v6]:port" (port optional). */
static int
parse_hostport(const char *hp, const char *def_port, char **ret_host, char **ret_port)
{
	const char *host = hp, *colon, *port;
	size_t host_len;
	char *h, *p;

	if (hp[0] == '[') {
		const char *end = strchr(hp, ']');

		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -EINVAL;
		host = hp + 1;
		host_len = (size_t)(end - host);
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(hp, ':');
		host_len = colon ? (size_t)(colon - hp) : strlen(hp);
	}
	port = colon ? colon + 1 : def_port;
	if (host_len == 0 || port[0] == '\0' || strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	if ((h = strndup(host, host_len)) == NULL)
		return -ENOMEM;
	if ((p = strdup(port)) == NULL) {
		free(h);
		return -ENOMEM;
	}
	*ret_host = h;
	*ret_port = p;
	return 0;
}

/* The reason of OpenSSL's last error (its queue emptied), or fallback. */
static const char *
ssl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : fallback;
}

/* A file OpenSSL would only call "system lib": say why it cannot be read. */
static int
tls_file_readable(const char *key, const char *path, struct errbuf *err)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	errbuf_set(err, "%s %s: %s", key, path, strerror(errno));
	return -EINVAL;
}

int
sink_tls_load(SSL_CTX *ctx, const struct sink_config *sc, struct errbuf *err)
{
	if (tls_file_readable("ca_file", sc->ca_file, err) < 0 ||
	    tls_file_readable("client_cert", sc->client_cert, err) < 0 ||
	    tls_file_readable("client_key", sc->client_key, err) < 0)
		return -EINVAL;
	if (sc->ca_file != NULL && SSL_CTX_load_verify_locations(ctx, sc->ca_file, NULL) != 1) {
		errbuf_set(err, "ca_file %s: %s", sc->ca_file,
		           ssl_reason("cannot read a PEM CA certificate"));
		return -EINVAL;
	}
	if (sc->client_cert == NULL)
		return 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, sc->client_cert) != 1) {
		errbuf_set(err, "client_cert %s: %s", sc->client_cert,
		           ssl_reason("cannot read a PEM certificate"));
		return -EINVAL;
	}
	if (sc->client_key == NULL ||
	    SSL_CTX_use_PrivateKey_file(ctx, sc->client_key, SSL_FILETYPE_PEM) != 1) {
		errbuf_set(err, "client_key %s: %s", sc->client_key ? sc->client_key : "(none)",
		           ssl_reason("cannot read a PEM private key"));
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		errbuf_set(err, "client_key %s does not match client_cert %s", sc->client_key,
		           sc->client_cert);
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

int
sink_tls_check(const struct sink_config *sc, struct errbuf *err)
{
	SSL_CTX *ctx;
	int r;

	if (sc->ca_file == NULL && sc->client_cert == NULL)
		return 0;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return -ENOMEM;
	r = sink_tls_load(ctx, sc, err);
	SSL_CTX_free(ctx);
	return r;
}

/* TLS 1.2+, peer verified against ca_file or else the default CA paths
 * (which honour SSL_CERT_FILE and SSL_CERT_DIR); the client certificate and
 * key for mutual TLS when configured. */
static int
syslog_tls_init(struct sink_syslog *s, const struct sink_config *sc, struct errbuf *err)
{
	int r;

	if ((s->tls_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return -ENOMEM;
	if (SSL_CTX_set_min_proto_version(s->tls_ctx, TLS1_2_VERSION) != 1 ||
	    (sc->ca_file == NULL && SSL_CTX_set_default_verify_paths(s->tls_ctx) != 1)) {
		errbuf_set(err, "syslog sink: cannot set up TLS: %s", ssl_reason("unknown"));
		return -EINVAL;
	}
	if ((r = sink_tls_load(s->tls_ctx, sc, err)) < 0) {
		errbuf_prefix(err, "syslog sink");
		return r;
	}
	SSL_CTX_set_verify(s->tls_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(s->tls_ctx, SSL_MODE_AUTO_RETRY);
	return 0;
}

static int
syslog_configure(struct sink_syslog *s, const struct sink_config *sc, struct errbuf *err)
{
	const char *fac = isempty(sc->facility) ? "auth" : sc->facility;
	bool tls;
	int r;

	s->facility = -1;
	for (size_t i = 0; i < ARRAY_SIZE(facilities); i++)
		if (streq(fac, facilities[i].name))
			s->facility = facilities[i].code;
	if (s->facility < 0) {
		errbuf_set(err, "syslog sink: unknown facility '%s'", fac);
		return -EINVAL;
	}
	if (isempty(sc->server)) {
		s->local_path = strdup("/dev/log");
		return s->local_path ? 0 : -ENOMEM;
	}
	if (strncmp(sc->server, "unix:", 5) == 0) {
		s->local_path = strdup(sc->server + 5);
		return s->local_path ? 0 : -ENOMEM;
	}
	if (strncmp(sc->server, "tcp://", 6) != 0 && strncmp(sc->server, "tls://", 6) != 0) {
		errbuf_set(err,
		           "syslog sink: server '%s' must be tcp://host:port or tls://host:port",
		           sc->server);
		return -EINVAL;
	}
	tls = strncmp(sc->server, "tls://", 6) == 0;
	r = parse_hostport(sc->server + 6, tls ? SYSLOG_TLS_PORT : SYSLOG_DEFAULT_PORT, &s->host,
	                   &s->port);
	if (r < 0) {
		errbuf_set(err, "syslog sink: bad server '%s'", sc->server);
		return r;
	}
	s->remote = true;
	if (!tls && (sc->ca_file || sc->client_cert || sc->client_key)) {
		errbuf_set(err, "syslog sink: ca_file, client_cert and client_key need a tls:// "
		                "server");
		return -EINVAL;
	}
	if (tls && (r = syslog_tls_init(s, sc, err)) < 0)
		return r;
	return 0;
}

static int
syslog_open(const struct sink_config *sc, void **ret, struct errbuf *err)
{
	struct sink_syslog *s;
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->fd = -1;
	if ((r = syslog_configure(s, sc, err)) < 0) {
		syslog_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

static bool
aborted(const atomic_bool *abort)
{
	return abort != NULL && atomic_load(abort);
}

/* Waits until fd is ready for events, in 100 ms steps so a stopping agent
 * (abort) is noticed. Returns 0, -ETIMEDOUT at end (time_mono_ms), or
 * -ECANCELED. */
static int
wait_fd(int fd, short events, uint64_t end, const atomic_bool *abort)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = time_mono_ms();
		int r;

		if (aborted(abort))
			return -ECANCELED;
		if (now >= end)
			return -ETIMEDOUT;
		r = poll(&p, 1, end - now < 100 ? (int)(end - now) : 100);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			return 0;
	}
}

static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, const atomic_bool *abort)
{
	int soerr = 0, r;
	socklen_t sl = sizeof(soerr);

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	if ((r = wait_fd(fd, POLLOUT, time_mono_ms() + SYSLOG_CONNECT_TIMEOUT, abort)) < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -errno;
	return soerr ? -soerr : 0;
}

static const char *
tls_error(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "handshake failed";
}

/* Runs the TLS handshake on the connected s->fd, verifying the server's
 * certificate and name. The socket is blocking with timeouts from here on. */
static int
syslog_tls_handshake(struct sink_syslog *s, struct errbuf *err)
{
	struct timeval tv = { .tv_sec = SYSLOG_TLS_IO_TIMEOUT_S };
	struct in6_addr a6;
	struct in_addr a4;
	int fl = fcntl(s->fd, F_GETFL);

	if (fl < 0 || fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	ERR_clear_error();
	if ((s->ssl = SSL_new(s->tls_ctx)) == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		return -ENOMEM;
	if (inet_pton(AF_INET, s->host, &a4) == 1 || inet_pton(AF_INET6, s->host, &a6) == 1) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, s->host) != 1)
			return -EINVAL;
	} else if (SSL_set1_host(s->ssl, s->host) != 1 ||
	           SSL_set_tlsext_host_name(s->ssl, s->host) != 1) {
		return -EINVAL;
	}
	if (SSL_connect(s->ssl) != 1) {
		long v = SSL_get_verify_result(s->ssl);

		if (v != X509_V_OK)
			errbuf_set(err, "TLS to %s:%s: certificate: %s", s->host, s->port,
			           X509_verify_cert_error_string(v));
		else
			errbuf_set(err, "TLS to %s:%s: %s", s->host, s->port, tls_error());
		return -EPROTO;
	}
	return 0;
}

static int
syslog_connect_tcp(struct sink_syslog *s, struct errbuf *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int r = -ECONNREFUSED, g;

	if ((g = getaddrinfo(s->host, s->port, &hints, &res)) != 0) {
		errbuf_set(err, "resolve %s: %s", s->host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		                ai->ai_protocol);

		if (fd < 0) {
			r = -errno;
			continue;
		}
		if ((r = connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, s->abort)) == 0) {
			s->fd = fd;
			break;
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (r < 0) {
		errbuf_set(err, "connect %s:%s: %s", s->host, s->port, strerror(-r));
		return r;
	}
	if (s->tls_ctx != NULL && (r = syslog_tls_handshake(s, err)) < 0) {
		if (err->msg[0] == '\0')
			errbuf_set(err, "TLS to %s:%s: %s", s->host, s->port, strerror(-r));
		syslog_disconnect(s);
	}
	return r;
}

static int
syslog_connect_local(struct sink_syslog *s, struct errbuf *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (de_strlcpy(sa.sun_path, s->local_path, sizeof(sa.sun_path)) >= sizeof(sa.sun_path)) {
		errbuf_set(err, "syslog socket path too long");
		return -ENAMETOOLONG;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		errbuf_set(err, "connect %s: %s", s->local_path, strerror(-r));
		return r;
	}
	s->fd = fd;
	return 0;
}

/* True when the peer closed (or reset) the connection since the last send. */
static bool
tcp_peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	char c;

	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLERR | POLLHUP | POLLRDHUP))
		return true;
	/* A syslog receiver never talks back: readable is normally EOF. */
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/* Waits until the peer acknowledged every byte sent. */
static int
tcp_wait_acked(int fd, const atomic_bool *abort)
{
	uint64_t end = time_mono_ms() + SYSLOG_ACK_TIMEOUT_MS;

	for (;;) {
		int outq = 0, soerr = 0;
		socklen_t sl = sizeof(soerr);
		struct timespec ts = { 0, 200 * 1000 };

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
			return -soerr;
		if (ioctl(fd, SIOCOUTQ, &outq) < 0)
			return -errno;
		if (outq == 0)
			return tcp_peer_gone(fd) ? -ECONNRESET : 0;
		if (time_mono_ms() >= end)
			return -ETIMEDOUT;
		if (aborted(abort))
			return -ECANCELED;
		nanosleep(&ts, NULL);
	}
}

static int
send_all(int fd, const char *p, size_t n, const atomic_bool *abort)
{
	uint64_t end = time_mono_ms() + SYSLOG_ACK_TIMEOUT_MS;

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			int r = wait_fd(fd, POLLOUT, end, abort);

			if (r < 0)
				return r;
			continue;
		}
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Writes the frame header and message as TLS records (blocking socket with
 * SO_SNDTIMEO, so a stuck peer times out). */
static int
tls_send(SSL *ssl, const char *frame, const struct sink_buf *msg)
{
	const char *parts[2] = { frame, msg->p };
	size_t lens[2] = { strlen(frame), msg->len };

	ERR_clear_error();
	for (int i = 0; i < 2; i++) {
		size_t done = 0;

		while (done < lens[i]) {
			size_t n = 0;

			if (SSL_write_ex(ssl, parts[i] + done, lens[i] - done, &n) != 1)
				return -ECONNRESET;
			done += n;
		}
	}
	return 0;
}

/* SD-PARAM value escaping (RFC 5424 6.3.3): '"', '\' and ']' get a backslash. */
static int
sd_value(struct sink_buf *b, const char *v)
{
	int r = 0;

	for (const char *p = v ? v : ""; *p != '\0' && r == 0; p++) {
		if (*p == '"' || *p == '\\' || *p == ']')
			r = sink_buf_add(b, "\\", 1);
		if (r == 0)
			r = sink_buf_add(b, p, 1);
	}
	return r;
}

/* A header field (HOSTNAME): printable US-ASCII without spaces, or "-". */
static int
header_token(struct sink_buf *b, const char *v, size_t max)
{
	size_t n = 0;
	int r = 0;

	for (const char *p = v ? v : ""; *p != '\0' && n < max && r == 0; p++, n++) {
		char c = (*p > 32 && *p < 127) ? *p : '_';

		r = sink_buf_add(b, &c, 1);
	}
	if (n == 0 && r == 0)
		r = sink_buf_add(b, "-", 1);
	return r;
}

static int
severity_code(const char *sev)
{
	for (size_t i = 0; sev != NULL && i < ARRAY_SIZE(levels); i++)
		if (streq(sev, levels[i].name))
			return levels[i].code;
	return 5;
}

static int
format_5424(struct sink_syslog *s, json_t *a, const char *json, size_t len, struct sink_buf *b)
{
	const char *sev = json_string_value(json_object_get(a, "severity"));
	const char *ts = json_string_value(json_object_get(a, "timestamp"));
	json_t *pid = json_object_get(json_object_get(a, "process"), "pid");
	char head[64], pidbuf[32];
	int r = 0;

	(void)snprintf(head, sizeof(head), "<%d>1 ", s->facility * 8 + severity_code(sev));
	(void)snprintf(pidbuf, sizeof(pidbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(pid));
	r |= sink_buf_add(b, head, strlen(head));
	r |= header_token(b, ts, 32);
	r |= sink_buf_add(b, " ", 1);
	r |= header_token(b, json_string_value(json_object_get(a, "host")), 255);
	(void)snprintf(head, sizeof(head), " daemoneye %d alert [daemoneye@" SYSLOG_PEN,
	               (int)getpid());
	r |= sink_buf_add(b, head, strlen(head));
	r |= sink_buf_add(b, " alert_id=\"", 11);
	r |= sd_value(b, json_string_value(json_object_get(a, "alert_id")));
	r |= sink_buf_add(b, "\" rule_id=\"", 11);
	r |= sd_value(b, json_string_value(json_object_get(a, "rule_id")));
	r |= sink_buf_add(b, "\" severity=\"", 12);
	r |= sd_value(b, sev);
	r |= sink_buf_add(b, "\" pid=\"", 7);
	r |= sd_value(b, pidbuf);
	r |= sink_buf_add(b, "\"] ", 3);
	r |= sink_buf_add(b, json, len);
	return r < 0 ? -ENOMEM : 0;
}

static int
format_3164(struct sink_syslog *s, json_t *a, const char *json, size_t len, struct sink_buf *b)
{
	const char *sev = json_string_value(json_object_get(a, "severity"));
	char head[96], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int r = 0;

	(void)strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", localtime_r(&now, &tm));
	(void)snprintf(head, sizeof(head),
	               "<%d>%s daemoneye[%d]: ", s->facility * 8 + severity_code(sev), stamp,
	               (int)getpid());
	r |= sink_buf_add(b, head, strlen(head));
	r |= sink_buf_add(b, json, len);
	return r < 0 ? -ENOMEM : 0;
}

static int
syslog_send(struct sink_syslog *s, const struct sink_buf *msg, struct errbuf *err)
{
	char frame[24];
	int r;

	if (!s->remote) {
		if (send(s->fd, msg->p, msg->len, MSG_NOSIGNAL) < 0) {
			r = -errno;
			errbuf_set(err, "send to %s: %s", s->local_path, strerror(-r));
			syslog_disconnect(s);
			return r == -EMSGSIZE ? SINK_REJECTED : r;
		}
		return 0;
	}
	(void)snprintf(frame, sizeof(frame), "%zu ", msg->len);
	if (s->ssl != NULL)
		r = tls_send(s->ssl, frame, msg);
	else if ((r = send_all(s->fd, frame, strlen(frame), s->abort)) == 0)
		r = send_all(s->fd, msg->p, msg->len, s->abort);
	if (r < 0 || (r = tcp_wait_acked(s->fd, s->abort)) < 0) {
		errbuf_set(err, "send to %s:%s: %s", s->host, s->port, strerror(-r));
		syslog_disconnect(s);
		return r;
	}
	return 0;
}

static int
syslog_deliver(void *state, const char *json, size_t len, struct errbuf *err)
{
	struct sink_syslog *s = state;
	struct sink_buf msg = { 0 };
	json_t *a;
	int r;

	if ((a = json_loadb(json, len, 0, NULL)) == NULL || !json_is_object(a)) {
		json_decref(a);
		errbuf_set(err, "not an alert object");
		return SINK_REJECTED;
	}
	r = s->remote ? format_5424(s, a, json, len, &msg) : format_3164(s, a, json, len, &msg);
	json_decref(a);
	if (r == 0 && msg.len > SYSLOG_MSG_MAX) {
		errbuf_set(err, "alert of %zu bytes is over the syslog limit", msg.len);
		r = SINK_REJECTED;
	}
	if (r == 0 && s->fd >= 0 && s->remote && tcp_peer_gone(s->fd))
		syslog_disconnect(s);
	if (r == 0 && s->fd < 0)
		r = s->remote ? syslog_connect_tcp(s, err) : syslog_connect_local(s, err);
	if (r == 0)
		r = syslog_send(s, &msg, err);
	free(msg.p);
	return r;
}

static void
syslog_set_abort(void *state, const atomic_bool *abort)
{
	((struct sink_syslog *)state)->abort = abort;
}

const struct sink_ops sink_syslog_ops = {
	.type = SINK_SYSLOG,
	.open = syslog_open,
	.deliver = syslog_deliver,
	.close = syslog_close,
	.set_abort = syslog_set_abort,
};
