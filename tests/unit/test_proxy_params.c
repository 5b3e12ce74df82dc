/*
 * Startup parameters: the reading of an "options" startup parameter as
 * PostgreSQL splits it (blanks, backslash escapes, "-c", "--name=value"),
 * and the interned parameter sets session mode matches servers by (same
 * pairs in any order are one object; the pairs come back sorted).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

struct seen {
	char text[512];
	int n;
	int stop_at; /* return 7 at this call (1-based), 0 = never */
};

static int collect(void *arg, const char *name, const char *value)
{
	struct seen *s = arg;
	size_t o = strlen(s->text);

	s->n++;
	snprintf(s->text + o, sizeof(s->text) - o, "[%s|%s]", name, value);
	return s->n == s->stop_at ? 7 : 0;
}

static int parse(const char *opts, struct seen *s, char *err, size_t errlen)
{
	memset(s->text, 0, sizeof(s->text));
	s->n = 0;
	err[0] = '\0';
	return proxy_options_parse(opts, collect, s, err, errlen);
}

Test(proxy_options, settings_in_every_form)
{
	struct seen s = {0};
	char err[256];

	cr_assert_eq(parse("  -c intervalstyle=postgres_verbose --search-path=a,b "
	                   "-cDateStyle=German,\\ DMY -c application_name=x\\\\y\\ z  ",
	                   &s, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(s.text, "[intervalstyle|postgres_verbose][search_path|a,b]"
	                         "[DateStyle|German, DMY][application_name|x\\y z]");
	cr_assert_eq(parse("", &s, err, sizeof(err)), 0);
	cr_assert_eq(s.n, 0);
	/* a value may hold "=" and dashes; only the name's dashes change */
	cr_assert_eq(parse("--a-b=c-d=e", &s, err, sizeof(err)), 0);
	cr_assert_str_eq(s.text, "[a_b|c-d=e]");
}

Test(proxy_options, what_is_not_a_setting)
{
	struct seen s = {0};
	char err[256];

	cr_assert_eq(parse("-c intervalstyle", &s, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "-c intervalstyle requires a value");
	cr_assert_eq(parse("--intervalstyle", &s, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "--intervalstyle requires a value");
	cr_assert_eq(parse("-B 100", &s, err, sizeof(err)), -1);
	cr_assert(strstr(err, "-B") != NULL, "%s", err);
	cr_assert_eq(parse("-c", &s, err, sizeof(err)), -1);
	cr_assert_eq(parse("plain", &s, err, sizeof(err)), -1);
	/* the callback's refusal stops the walk and is returned */
	s.stop_at = 1;
	cr_assert_eq(parse("-c a=1 -c b=2", &s, err, sizeof(err)), 7);
	cr_assert_eq(s.n, 1);
}

Test(proxy_sparams, interned_sorted_and_freed)
{
	static struct proxy_ctx ctx;
	const char *n1[] = {"options", "application_name", "TimeZone"};
	const char *v1[] = {"-c a=1", "app", "UTC"};
	const char *n2[] = {"TimeZone", "options", "application_name"};
	const char *v2[] = {"UTC", "-c a=1", "app"};
	const char *v3[] = {"UTC", "-c a=2", "app"};
	struct proxy_sparams *a, *b, *c;
	const char *name, *value;
	size_t pos = 0;
	char text[256] = "";
	bool oom;

	memset(&ctx, 0, sizeof(ctx));
	cr_assert_null(proxy_sparams_get(&ctx, n1, v1, 0, &oom));
	cr_assert(!oom);
	a = proxy_sparams_get(&ctx, n1, v1, 3, &oom);
	b = proxy_sparams_get(&ctx, n2, v2, 3, &oom);
	c = proxy_sparams_get(&ctx, n2, v3, 3, &oom);
	cr_assert(a && b && c);
	cr_assert_eq(a, b, "the same pairs in another order make another set");
	cr_assert_neq(a, c);
	while ((name = proxy_sparams_next(a, &pos, &value))) {
		size_t o = strlen(text);

		snprintf(text + o, sizeof(text) - o, "%s=%s;", name, value);
	}
	cr_assert_str_eq(text, "TimeZone=UTC;application_name=app;options=-c a=1;");
	cr_assert_str_eq(proxy_sparams_find(c, "options"), "-c a=2");
	cr_assert_null(proxy_sparams_find(c, "user"));
	cr_assert_null(proxy_sparams_find(NULL, "options"));
	cr_assert_eq(proxy_sparams_ref(a), a);
	proxy_sparams_put(&ctx, a);
	proxy_sparams_put(&ctx, a);
	cr_assert_not_null(ctx.sparams, "sets still referenced were freed");
	proxy_sparams_put(&ctx, b);
	proxy_sparams_put(&ctx, c);
	proxy_sparams_put(&ctx, NULL);
	cr_assert_null(ctx.sparams, "the last reference left a set behind");
	proxy_sparams_free_all(&ctx);
}
