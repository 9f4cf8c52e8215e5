/* The webhook sink: POSTs each alert's SPEC §6 JSON object to a URL with
 * libcurl (the only file that includes curl.h, STYLE.md rule 8).
 *
 * http:// and https:// only, no redirects followed, HTTPS verified against the
 * system CA store (libcurl's default), a whole-request timeout of timeout_ms.
 * A 2xx answer is a delivery. 408, 429 and 5xx, and any transport error, are
 * retried by the caller (backoff, spool); other answers (400, 401, 404, ...)
 * mean the receiver will never take this alert: it is rejected and counted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sink.h"
#include "util.h"

#define WEBHOOK_DEFAULT_TIMEOUT_MS 5000u

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

static int
webhook_open(const struct sink_config *sc, void **ret, struct errbuf *err)
{
	struct sink_webhook *w;

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
