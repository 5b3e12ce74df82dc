/*
 * Log output. The file is opened in append mode so that an external
 * rotation followed by SIGHUP (log_reopen) loses nothing.
 */
#include "stats/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_LVL_INFO;

static FILE *log_fp;
static char *log_path;

static const char *const level_names[] = {"ERROR", "WARNING", "LOG", "DEBUG", "TRACE"};

int log_open(const char *path)
{
	FILE *fp;

	if (!path || !*path) {
		if (log_fp)
			fclose(log_fp);
		log_fp = NULL;
		free(log_path);
		log_path = NULL;
		return 0;
	}
	fp = fopen(path, "a");
	if (!fp)
		return -1;
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp)
		fclose(log_fp);
	log_fp = fp;
	if (log_path != path) {
		free(log_path);
		log_path = strdup(path);
	}
	return 0;
}

void log_reopen(void)
{
	if (log_path && log_open(log_path) < 0)
		log_error("cannot reopen log file \"%s\"", log_path);
}

void log_set_verbose(int verbose)
{
	log_current_level = verbose >= 2   ? LOG_LVL_TRACE
	                    : verbose == 1 ? LOG_LVL_DEBUG
	                                   : LOG_LVL_INFO;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (lvl > log_current_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03d UTC [%d] %s ",
	                      (int)(tv.tv_usec / 1000), (int)getpid(), level_names[lvl]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n == sizeof(line) - 1)
		n--;
	line[n++] = '\n';
	fwrite(line, 1, n, log_fp ? log_fp : stderr);
}

const char *log_escape(char *dst, size_t n, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (n == 0)
		return dst;
	if (!src)
		src = "-";
	for (; *src; src++) {
		unsigned char ch = (unsigned char)*src;
		bool plain = ch >= 0x20 && ch != 0x7f && ch != '\\';
		size_t need = plain ? 1 : 4;

		if (o + need + 4 > n) {
			/* room for "..." and the NUL */
			if (o + 4 <= n) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			dst[o++] = (char)ch;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	dst[o] = 0;
	return dst;
}
