/*
 * Literal values changed, for the checks of proto_sql_skeleton (the unit
 * test and fuzz_sqlskel): the text <in, len> with each number that starts
 * a token (outside comments and quoted identifiers) made of other digits (longer when <v> is odd)
 * and the body of each '...' string replaced by one of another length. Naive on purpose: what it
 * changes need not be a literal, since the checks only claim that texts with one skeleton scan
 * alike. Writes at most 3 * len bytes and a NUL into <out>; returns the length.
 */
#ifndef SLUICE_SKEL_MUTATE_H
#define SLUICE_SKEL_MUTATE_H

#include <stddef.h>
#include <stdint.h>

static inline int skel_mut_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static inline size_t skel_mutate(const char *in, size_t len, unsigned v, char *out)
{
	size_t i = 0, w = 0;

	while (i < len && in[i]) {
		char c = in[i];

		/* comments and quoted identifiers stay: no literal is in them */
		if (c == '"' || (c == '/' && i + 1 < len && in[i + 1] == '*') ||
		    (c == '-' && i + 1 < len && in[i + 1] == '-')) {
			const char *stop = c == '"' ? "\"" : c == '/' ? "*/" : "\n";
			size_t j = i + 1;

			while (j < len && in[j] &&
			       !(in[j] == stop[0] &&
			         (!stop[1] || (j + 1 < len && in[j + 1] == stop[1]))))
				j++;
			j = j < len && in[j] ? j + (stop[1] ? 2 : 1) : j;
			if (j > len)
				j = len;
			while (i < j)
				out[w++] = in[i++];
		} else if (c >= '0' && c <= '9' && (i == 0 || !skel_mut_word(in[i - 1]))) {
			while (i < len && in[i] >= '0' && in[i] <= '9') {
				out[w++] = (char)('0' + (in[i] - '0' + 1 + v % 9) % 10);
				i++;
			}
			if (v & 1)
				out[w++] = '7';
		} else if (c == '\'') {
			size_t j = i + 1;

			while (j < len && in[j] && in[j] != '\'')
				j++;
			out[w++] = '\'';
			for (unsigned k = 0; k < v % 3 + (j - i - 1 == v % 3); k++)
				out[w++] = 'q';
			if (j < len && in[j] == '\'')
				out[w++] = '\'';
			i = j + 1;
		} else {
			out[w++] = c;
			i++;
		}
	}
	out[w] = '\0';
	return w;
}

#endif /* SLUICE_SKEL_MUTATE_H */
