/* The webhook sink: POSTs each alert's SPEC §6 JSON object to a URL with
 * libcurl (the only file that includes curl.h, STYLE.md rule 8).
 *
 * http:// and https:// only, no redirects followed, HTTPS verified against the
 * system CA store (libcurl's default) or the sink's ca_file alone, with
 * client_cert and client_key a client certificate (mutual TLS); the three
 * files are read once when the sink opens (libcurl gets them as blobs), so
 * nothing is opened per request. A whole-request timeout of timeout_ms.
 * A 2xx answer is a delivery. 408, 429 and 5xx, and any transport error, are
 * retried by the caller (backoff, spool); other answers (400, 401, 404, ...)
 * mean the receiver will never take this alert: it is rejected and counted. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sink.h"
#include "util.h"

#define WEBHOOK_DEFAULT_TIMEOUT_MS 5000u
#define WEBHOOK_PEM_MAX            (1024 * 1024) /* bytes of one PEM file */

struct sink_webhook {
	char *url;
	uint32_t timeout_ms;
	CURL *curl;
	struct curl_slist *headers;
	const atomic_bool *abort;
};

/* libcurl's progress callback (about once a second, also while connecting):
 * a non-zero return aborts the transfer when the agent is stopping. */
static int
webhook_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                 curl_off_t ulnow)
{
	struct sink_webhook *w = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return w->abort != NULL && atomic_load(w->abort);
}

static void
webhook_set_abort(void *state, const atomic_bool *abort)
{
	((struct sink_webhook *)state)->abort = abort;
}

static void
webhook_close(void *state)
{
	struct sink_webhook *w = state;

	if (w == NULL)
		return;
	if (w->curl != NULL)
		curl_easy_cleanup(w->curl);
	curl_slist_free_all(w->headers);
	free(w->url);
	free(w);
}

/* The body of the answer is not needed: discard it. */
static size_t
discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static int
webhook_setup(struct sink_webhook *w)
{
	CURLcode c = CURLE_OK;

	if ((w->curl = curl_easy_init()) == NULL)
		return -ENOMEM;
	w->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (w->headers == NULL)
		return -ENOMEM;
	c |= curl_easy_setopt(w->curl, CURLOPT_URL, w->url);
	c |= curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->headers);
	c |= curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	c |= curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
	c |= curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)w->timeout_ms);
	c |= curl_easy_setopt(w->curl, CURLOPT_FOLLOWLOCATION, 0L);
	c |= curl_easy_setopt(w->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	c |= curl_easy_setopt(w->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	c |= curl_easy_setopt(w->curl, CURLOPT_USERAGENT, "daemoneye/" DAEMONEYE_VERSION);
	c |= curl_easy_setopt(w->curl, CURLOPT_SSLCERTTYPE, "PEM");
	c |= curl_easy_setopt(w->curl, CURLOPT_SSLKEYTYPE, "PEM");
	c |= curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
	c |= curl_easy_setopt(w->curl, CURLOPT_NOPROGRESS, 0L);
	c |= curl_easy_setopt(w->curl, CURLOPT_XFERINFOFUNCTION, webhook_progress);
	c |= curl_easy_setopt(w->curl, CURLOPT_XFERINFODATA, w);
#if LIBCURL_VERSION_NUM >= 0x075500
	c |= curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	c |= curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	return c == CURLE_OK ? 0 : -EINVAL;
}

/* Hands one PEM file to libcurl as a blob (libcurl copies it). */
static int
webhook_blob(struct sink_webhook *w, CURLoption opt, const char *key, const char *path,
             struct errbuf *err)
{
	struct curl_blob blob = { .flags = CURL_BLOB_COPY };
	char *buf = NULL;
	size_t len = 0;
	CURLcode c;
	int r;

	if ((r = read_file_at(AT_FDCWD, path, WEBHOOK_PEM_MAX, false, &buf, &len)) < 0) {
		errbuf_set(err, "%s %s: %s", key, path, strerror(-r));
		return -EINVAL;
	}
	blob.data = buf;
	blob.len = len;
	c = curl_easy_setopt(w->curl, opt, &blob);
	explicit_bzero(buf, len); /* may be a private key */
	free(buf);
	if (c != CURLE_OK) {
		errbuf_set(err, "%s %s: libcurl: %s", key, path, curl_easy_strerror(c));
		return -EINVAL;
	}
	return 0;
}

/* ca_file replaces the system CA store; client_cert/client_key for mutual
 * TLS. The files are checked with OpenSSL first (a key that does not match
 * its certificate is refused now, not at the first alert). */
static int
webhook_tls(struct sink_webhook *w, const struct sink_config *sc, struct errbuf *err)
{
	int r;

	if (sc->ca_file == NULL && sc->client_cert == NULL && sc->client_key == NULL)
		return 0;
	if (strncmp(sc->url, "https://", 8) != 0) {
		errbuf_set(err, "ca_file, client_cert and client_key need an https:// url");
		return -EINVAL;
	}
	if ((sc->client_cert == NULL) != (sc->client_key == NULL)) {
		errbuf_set(err, "client_cert and client_key go together");
		return -EINVAL;
	}
	if ((r = sink_tls_check(sc, err)) < 0)
		return r;
	if (sc->ca_file != NULL) {
		/* Only this CA: no system bundle file or directory beside it. */
		if (curl_easy_setopt(w->curl, CURLOPT_CAINFO, NULL) != CURLE_OK ||
		    curl_easy_setopt(w->curl, CURLOPT_CAPATH, NULL) != CURLE_OK) {
			errbuf_set(err, "ca_file %s: libcurl refuses to drop its CA store",
			           sc->ca_file);
			return -EINVAL;
		}
		if ((r = webhook_blob(w, CURLOPT_CAINFO_BLOB, "ca_file", sc->ca_file, err)) < 0)
			return r;
	}
	if (sc->client_cert != NULL &&
	    ((r = webhook_blob(w, CURLOPT_SSLCERT_BLOB, "client_cert", sc->client_cert, err)) < 0 ||
	     (r = webhook_blob(w, CURLOPT_SSLKEY_BLOB, "client_key", sc->client_key, err)) < 0))
		return r;
	return 0;
}

static int
webhook_open(const struct sink_config *sc, void **ret, struct errbuf *err)
{
	struct sink_webhook *w;
	int r;

	if (isempty(sc->url) ||
	    (strncmp(sc->url, "http://", 7) != 0 && strncmp(sc->url, "https://", 8) != 0)) {
		errbuf_set(err, "webhook sink: url must be http:// or https://");
		return -EINVAL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->url = strdup(sc->url)) == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->timeout_ms = sc->timeout_ms ? sc->timeout_ms : WEBHOOK_DEFAULT_TIMEOUT_MS;
	if (webhook_setup(w) < 0) {
		webhook_close(w);
		errbuf_set(err, "webhook sink: cannot set up libcurl for %s", sc->url);
		return -EINVAL;
	}
	if ((r = webhook_tls(w, sc, err)) < 0) {
		webhook_close(w);
		errbuf_prefix(err, "webhook sink");
		return r;
	}
	*ret = w;
	return 0;
}

static int
webhook_deliver(void *state, const char *json, size_t len, struct errbuf *err)
{
	struct sink_webhook *w = state;
	long status = 0;
	CURLcode c;

	c = curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, json);
	if (c == CURLE_OK)
		c = curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if (c == CURLE_OK)
		c = curl_easy_perform(w->curl);
	if (c != CURLE_OK) {
		errbuf_set(err, "POST %s: %s", w->url, curl_easy_strerror(c));
		if (c == CURLE_ABORTED_BY_CALLBACK)
			return -ECANCELED;
		return c == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECOMM;
	}
	(void)curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return 0;
	errbuf_set(err, "POST %s: HTTP %ld", w->url, status);
	if (status == 408 || status == 429 || status >= 500)
		return -EAGAIN;
	return SINK_REJECTED;
}

const struct sink_ops sink_webhook_ops = {
	.type = SINK_WEBHOOK,
	.open = webhook_open,
	.deliver = webhook_deliver,
	.close = webhook_close,
	.set_abort = webhook_set_abort,
};
