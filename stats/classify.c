/*
 * The cold path of statement statistics: PostgreSQL's own parser
 * (libpg_query) reads one statement's original text, once per shape, and
 * says what it is: its class, the tables it reads and writes, whether it
 * may write, takes row locks, holds a data-modifying CTE, calls a function
 * not known to be immutable, touches the catalog or a temporary relation.
 * Nothing of the text is kept: only table names and flags.
 *
 * The tree is read from pg_query_parse's JSON, walked with json-c, rather
 * than from its protobuf: Debian ships no protobuf-c headers matching the
 * copy of protobuf-c built into libpg_query, and at once per shape the
 * JSON round trip costs a few microseconds that do not matter.
 *
 * Decisions, so that the consumers (SHOW QUERIES, the cache) can rely on
 * them:
 *  - TRUNCATE is ddl (it reports no row count and takes an ACCESS
 *    EXCLUSIVE lock, like DDL), writes, and its tables are written.
 *  - CLUSTER, REINDEX and REFRESH MATERIALIZED VIEW are ddl; every ddl
 *    writes, and its own relation is written.
 *  - DO and CALL are utility; they run arbitrary code, so they write and
 *    count as volatile. EXECUTE of a prepared statement may write (what it
 *    runs is not in its text).
 *  - SET TRANSACTION and SET TRANSACTION SNAPSHOT are tcl; SET SESSION
 *    CHARACTERISTICS is utility.
 *  - LOCK TABLE is utility with locking set and its tables read.
 *  - Text that is not run (plain EXPLAIN, PREPARE, a view's, rule's or SQL
 *    function's body) does not write: the tables it would write are listed
 *    as read. EXPLAIN ANALYZE runs its statement and counts as it.
 *  - An unqualified name that is a CTE's name anywhere in the statement
 *    is taken as that CTE, not as a table.
 *  - Session state (STATS_SS_*, for transaction pooling's pins): told from
 *    the statement node (CREATE TEMP ..., SET, LISTEN, DECLARE ... WITH
 *    HOLD, PREPARE, LOAD and what ends them) and from function calls
 *    anywhere in the tree, even in text not run here (a PREPARE's body
 *    runs at its EXECUTE).
 */
#include "stats/stats.h"
#include "stats/builtin_fns.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <pg_query.h>
#include <xxhash.h>

/* libpg_query's trees nest about three levels per level of SQL; past this
 * the statement is classed as unparsable rather than walked (the walk
 * recurses once per level). */
#define CLASSIFY_MAX_DEPTH 4096
/* Deep enough for all but unusual statements (a join of a few tables with
 * a subquery is about 30). */
#define CLASSIFY_SHALLOW_DEPTH 128

static const char *const class_names[STATS_NCLASSES] = {
        "select", "insert", "update", "delete", "merge", "copy", "ddl", "tcl", "utility", "other",
};

const char *stats_class_name(enum stats_class cls)
{
	if ((unsigned)cls >= STATS_NCLASSES)
		return "other";
	return class_names[cls];
}

/*
 * Functions whose every overload is immutable in PostgreSQL 15's pg_proc
 * (provolatile = 'i'), checked against the catalog; length() is kept
 * although length(bytea, name) is stable, the one-argument forms being the
 * common ones. Window and aggregate functions marked immutable there are
 * included. Sorted (strcmp) for bsearch. A schema other than pg_catalog,
 * or a name not here, is volatile.
 */
static const char *const immutable_fns[] = {
        "abs",
        "acos",
        "array_agg",
        "array_append",
        "array_cat",
        "array_dims",
        "array_fill",
        "array_length",
        "array_lower",
        "array_ndims",
        "array_position",
        "array_positions",
        "array_prepend",
        "array_remove",
        "array_replace",
        "array_upper",
        "ascii",
        "asin",
        "atan",
        "atan2",
        "avg",
        "bit_and",
        "bit_count",
        "bit_length",
        "bit_or",
        "bool",
        "bool_and",
        "bool_or",
        "btrim",
        "cardinality",
        "cbrt",
        "ceil",
        "ceiling",
        "char_length",
        "character_length",
        "chr",
        "corr",
        "cos",
        "cot",
        "count",
        "decode",
        "degrees",
        "dense_rank",
        "div",
        "encode",
        "every",
        "exp",
        "factorial",
        "first_value",
        "float8",
        "floor",
        "gcd",
        "get_byte",
        "hashtext",
        "initcap",
        "int2",
        "int4",
        "int4range",
        "int8",
        "isempty",
        "isfinite",
        "json_array_length",
        "json_extract_path_text",
        "json_typeof",
        "jsonb_array_elements",
        "jsonb_array_length",
        "jsonb_each",
        "jsonb_extract_path",
        "jsonb_extract_path_text",
        "jsonb_object_agg",
        "jsonb_object_keys",
        "jsonb_path_exists",
        "jsonb_path_query",
        "jsonb_pretty",
        "jsonb_set",
        "jsonb_strip_nulls",
        "jsonb_typeof",
        "lag",
        "last_value",
        "lcm",
        "lead",
        "left",
        "length",
        "ln",
        "log",
        "log10",
        "lower",
        "lower_inc",
        "lpad",
        "ltrim",
        "max",
        "md5",
        "min",
        "min_scale",
        "mod",
        "mode",
        "normalize",
        "ntile",
        "num_nonnulls",
        "num_nulls",
        "octet_length",
        "overlay",
        "percent_rank",
        "percentile_cont",
        "percentile_disc",
        "pi",
        "position",
        "power",
        "quote_ident",
        "radians",
        "range_merge",
        "rank",
        "regexp_count",
        "regexp_instr",
        "regexp_like",
        "regexp_match",
        "regexp_matches",
        "regexp_replace",
        "regexp_split_to_array",
        "regexp_substr",
        "repeat",
        "replace",
        "reverse",
        "right",
        "round",
        "row_number",
        "rpad",
        "rtrim",
        "scale",
        "set_byte",
        "sha256",
        "sha512",
        "sign",
        "sin",
        "split_part",
        "sqrt",
        "starts_with",
        "stddev",
        "string_agg",
        "string_to_array",
        "strpos",
        "substr",
        "substring",
        "sum",
        "tan",
        "text",
        "to_hex",
        "translate",
        "trim_array",
        "trim_scale",
        "trunc",
        "unistr",
        "unnest",
        "upper",
        "upper_inc",
        "uuid_in",
        "variance",
        "width_bucket",
};

/* What a statement node does, keyed by its node name. */
#define ST_WRITES 1u /* changes data or schema when run */
#define ST_TARGET 2u /* its own relation fields (relation, view, ...) are written */
#define ST_NOEXEC 4u /* the statements inside it are not run by it */
#define ST_DML    8u /* INSERT / UPDATE / DELETE / MERGE */

struct stmt_kind {
	const char *name;
	uint8_t cls;
	uint8_t flags;
};

#define DDL      STATS_CL_DDL, ST_WRITES | ST_TARGET
#define DDL_BODY STATS_CL_DDL, ST_WRITES | ST_TARGET | ST_NOEXEC
#define UTIL     STATS_CL_UTILITY, 0

/* Sorted (strcmp) for bsearch. CopyStmt, ExplainStmt and VariableSetStmt
 * are refined in walk_stmt. */
static const struct stmt_kind stmt_kinds[] = {
        {"AlterCollationStmt", DDL},
        {"AlterDatabaseRefreshCollStmt", DDL},
        {"AlterDatabaseSetStmt", DDL},
        {"AlterDatabaseStmt", DDL},
        {"AlterDefaultPrivilegesStmt", DDL},
        {"AlterDomainStmt", DDL},
        {"AlterEnumStmt", DDL},
        {"AlterEventTrigStmt", DDL},
        {"AlterExtensionContentsStmt", DDL},
        {"AlterExtensionStmt", DDL},
        {"AlterFdwStmt", DDL},
        {"AlterForeignServerStmt", DDL},
        {"AlterFunctionStmt", DDL},
        {"AlterObjectDependsStmt", DDL},
        {"AlterObjectSchemaStmt", DDL},
        {"AlterOpFamilyStmt", DDL},
        {"AlterOperatorStmt", DDL},
        {"AlterOwnerStmt", DDL},
        {"AlterPolicyStmt", DDL},
        {"AlterPublicationStmt", DDL},
        {"AlterRoleSetStmt", DDL},
        {"AlterRoleStmt", DDL},
        {"AlterSeqStmt", DDL},
        {"AlterStatsStmt", DDL},
        {"AlterSubscriptionStmt", DDL},
        {"AlterSystemStmt", DDL},
        {"AlterTSConfigurationStmt", DDL},
        {"AlterTSDictionaryStmt", DDL},
        {"AlterTableMoveAllStmt", DDL},
        {"AlterTableSpaceOptionsStmt", DDL},
        {"AlterTableStmt", DDL},
        {"AlterTypeStmt", DDL},
        {"AlterUserMappingStmt", DDL},
        {"CallStmt", STATS_CL_UTILITY, ST_WRITES},
        {"CheckPointStmt", UTIL},
        {"ClosePortalStmt", UTIL},
        {"ClusterStmt", DDL},
        {"CommentStmt", DDL},
        {"CompositeTypeStmt", DDL},
        {"ConstraintsSetStmt", UTIL},
        {"CopyStmt", STATS_CL_COPY, 0},
        {"CreateAmStmt", DDL},
        {"CreateCastStmt", DDL},
        {"CreateConversionStmt", DDL},
        {"CreateDomainStmt", DDL},
        {"CreateEnumStmt", DDL},
        {"CreateEventTrigStmt", DDL},
        {"CreateExtensionStmt", DDL},
        {"CreateFdwStmt", DDL},
        {"CreateForeignServerStmt", DDL},
        {"CreateForeignTableStmt", DDL},
        {"CreateFunctionStmt", DDL_BODY},
        {"CreateOpClassStmt", DDL},
        {"CreateOpFamilyStmt", DDL},
        {"CreatePLangStmt", DDL},
        {"CreatePolicyStmt", DDL_BODY},
        {"CreatePublicationStmt", DDL},
        {"CreateRangeStmt", DDL},
        {"CreateRoleStmt", DDL},
        {"CreateSchemaStmt", DDL},
        {"CreateSeqStmt", DDL},
        {"CreateStatsStmt", DDL},
        {"CreateStmt", DDL},
        {"CreateSubscriptionStmt", DDL},
        {"CreateTableAsStmt", DDL},
        {"CreateTableSpaceStmt", DDL},
        {"CreateTransformStmt", DDL},
        {"CreateTrigStmt", DDL_BODY},
        {"CreateUserMappingStmt", DDL},
        {"CreatedbStmt", DDL},
        {"DeallocateStmt", UTIL},
        {"DeclareCursorStmt", UTIL},
        {"DefineStmt", DDL},
        {"DeleteStmt", STATS_CL_DELETE, ST_WRITES | ST_TARGET | ST_DML},
        {"DiscardStmt", UTIL},
        {"DoStmt", STATS_CL_UTILITY, ST_WRITES},
        {"DropOwnedStmt", DDL},
        {"DropRoleStmt", DDL},
        {"DropStmt", DDL},
        {"DropSubscriptionStmt", DDL},
        {"DropTableSpaceStmt", DDL},
        {"DropUserMappingStmt", DDL},
        {"DropdbStmt", DDL},
        {"ExecuteStmt", STATS_CL_UTILITY, ST_WRITES},
        {"ExplainStmt", STATS_CL_UTILITY, 0},
        {"FetchStmt", UTIL},
        {"GrantRoleStmt", DDL},
        {"GrantStmt", DDL},
        {"ImportForeignSchemaStmt", DDL},
        {"IndexStmt", DDL},
        {"InsertStmt", STATS_CL_INSERT, ST_WRITES | ST_TARGET | ST_DML},
        {"ListenStmt", UTIL},
        {"LoadStmt", UTIL},
        {"LockStmt", UTIL},
        {"MergeStmt", STATS_CL_MERGE, ST_WRITES | ST_TARGET | ST_DML},
        {"NotifyStmt", UTIL},
        {"PrepareStmt", STATS_CL_UTILITY, ST_NOEXEC},
        {"ReassignOwnedStmt", DDL},
        {"RefreshMatViewStmt", DDL},
        {"ReindexStmt", DDL},
        {"RenameStmt", DDL},
        {"RuleStmt", DDL_BODY},
        {"SecLabelStmt", DDL},
        {"SelectStmt", STATS_CL_SELECT, 0},
        {"TransactionStmt", STATS_CL_TCL, 0},
        {"TruncateStmt", DDL},
        {"UnlistenStmt", UTIL},
        {"UpdateStmt", STATS_CL_UPDATE, ST_WRITES | ST_TARGET | ST_DML},
        {"VacuumStmt", UTIL},
        {"VariableSetStmt", UTIL},
        {"VariableShowStmt", UTIL},
        {"ViewStmt", DDL_BODY},
};

#undef DDL
#undef DDL_BODY
#undef UTIL

/* Walk flags: the context a node is reached in. */
#define W_TARGET 1u /* a RangeVar here is a write target (consumed by it) */
#define W_NOEXEC 2u /* under text that is not run */
#define W_IN_CTE 4u /* under a CTE's query */

struct walk {
	struct stats_shape_info *out;
	const char **ctes; /* borrowed from the tree: CTE names */
	size_t nctes, cap_ctes;
};

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

static int cmp_kind(const void *key, const void *elem)
{
	return strcmp(key, ((const struct stmt_kind *)elem)->name);
}

static const struct stmt_kind *find_kind(const char *name)
{
	return bsearch(name, stmt_kinds, sizeof(stmt_kinds) / sizeof(stmt_kinds[0]),
	               sizeof(stmt_kinds[0]), cmp_kind);
}

static const char *get_str(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool get_bool(json_object *obj, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

/* A wrapped node is {"TypeName": {...}}: one key, upper-case first. */
static const char *wrapped_type(json_object *obj, json_object **body)
{
	struct json_object_iter it;

	if (json_object_object_length(obj) != 1)
		return NULL;
	json_object_object_foreachC(obj, it)
	{
		if (!isupper((unsigned char)it.key[0]) ||
		    !json_object_is_type(it.val, json_type_object))
			return NULL;
		*body = it.val;
		return it.key;
	}
	return NULL;
}

/* Pass one: every CTE name of the statement, wherever it is. Fails only
 * on OOM (the names gathered so far stay). */
static void find_ctes(struct walk *w, json_object *v)
{
	struct json_object_iter it;

	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			find_ctes(w, json_object_array_get_idx(v, i));
		return;
	}
	if (!json_object_is_type(v, json_type_object))
		return;
	json_object_object_foreachC(v, it)
	{
		if (strcmp(it.key, "CommonTableExpr") == 0) {
			const char *name = get_str(it.val, "ctename");
			if (name && w->nctes == w->cap_ctes) {
				size_t cap = w->cap_ctes ? 2 * w->cap_ctes : 8;
				const char **p = realloc(w->ctes, cap * sizeof(*p));
				if (!p)
					return;
				w->ctes = p;
				w->cap_ctes = cap;
			}
			if (name)
				w->ctes[w->nctes++] = name;
		}
		find_ctes(w, it.val);
	}
}

static bool is_cte(const struct walk *w, const char *name)
{
	for (size_t i = 0; i < w->nctes; i++)
		if (strcmp(w->ctes[i], name) == 0)
			return true;
	return false;
}

/* Add "schema.rel" (or "rel") to <list> unless there. A full list or OOM
 * cuts the lists. */
static void list_add(struct stats_shape_info *out, char **list, uint8_t *n, const char *schema,
                     const char *rel)
{
	size_t ls = schema ? strlen(schema) : 0, lr = strlen(rel);

	for (uint8_t i = 0; i < *n; i++) {
		const char *s = list[i];
		if (schema ? (strncmp(s, schema, ls) == 0 && s[ls] == '.' &&
		              strcmp(s + ls + 1, rel) == 0)
		           : strcmp(s, rel) == 0)
			return;
	}
	if (*n >= STATS_MAX_TABLES) {
		out->tables_cut = true;
		return;
	}
	char *name = malloc(ls + (schema ? 1 : 0) + lr + 1);
	if (!name) {
		out->tables_cut = true;
		return;
	}
	char *p = name;
	if (schema) {
		memcpy(p, schema, ls);
		p += ls;
		*p++ = '.';
	}
	memcpy(p, rel, lr + 1);
	list[(*n)++] = name;
}

static void add_relation(struct walk *w, const char *schema, const char *rel, bool persist_temp,
                         unsigned flags)
{
	struct stats_shape_info *out = w->out;

	if (!rel || !*rel)
		return;
	if (schema && !*schema)
		schema = NULL;
	if (!schema && is_cte(w, rel))
		return;
	if (schema ? (strcmp(schema, "pg_catalog") == 0 ||
	              strcmp(schema, "information_schema") == 0 ||
	              (strncmp(schema, "pg_", 3) == 0 && strncmp(schema, "pg_temp", 7) != 0))
	           : strncmp(rel, "pg_", 3) == 0)
		out->catalog = true;
	if (persist_temp || (schema && strncmp(schema, "pg_temp", 7) == 0))
		out->temp = true;
	if ((flags & W_TARGET) && !(flags & W_NOEXEC))
		list_add(out, out->written, &out->nwritten, schema, rel);
	else
		list_add(out, out->read, &out->nread, schema, rel);
}

static void range_var(struct walk *w, json_object *rv, unsigned flags)
{
	const char *pers = get_str(rv, "relpersistence");

	add_relation(w, get_str(rv, "schemaname"), get_str(rv, "relname"), pers && *pers == 't',
	             flags);
}

/* A String list naming a relation (DROP TABLE a.b): its last two items. */
static void name_list(struct walk *w, json_object *list, unsigned flags)
{
	json_object *items, *body;
	const char *parts[3] = {NULL, NULL, NULL};
	size_t n, k = 0;

	if (!wrapped_type(list, &body) || !json_object_object_get_ex(body, "items", &items) ||
	    !json_object_is_type(items, json_type_array))
		return;
	n = json_object_array_length(items);
	for (size_t i = 0; i < n && k < 3; i++) {
		json_object *s;
		if (!wrapped_type(json_object_array_get_idx(items, i), &s))
			return;
		parts[k++] = get_str(s, "sval");
	}
	if (k == 0 || k > 3 || n != k)
		return;
	add_relation(w, k >= 2 ? parts[k - 2] : NULL, parts[k - 1], false, flags);
}

static bool drop_of_relation(json_object *drop)
{
	static const char *const kinds[] = {"OBJECT_FOREIGN_TABLE", "OBJECT_INDEX",
	                                    "OBJECT_MATVIEW",       "OBJECT_SEQUENCE",
	                                    "OBJECT_TABLE",         "OBJECT_VIEW"};
	const char *t = get_str(drop, "removeType");

	return t && bsearch(t, kinds, sizeof(kinds) / sizeof(kinds[0]), sizeof(kinds[0]),
	                    cmp_name) != NULL;
}

/* Is the last argument of the call <fc> the constant true (set_config's
 * is_local)? A literal string or a parameter could be anything. */
static bool last_arg_true(json_object *fc)
{
	json_object *args, *body, *bv, *b;
	size_t n;

	if (!json_object_object_get_ex(fc, "args", &args) ||
	    !json_object_is_type(args, json_type_array) ||
	    (n = json_object_array_length(args)) != 3)
		return false;
	const char *t = wrapped_type(json_object_array_get_idx(args, n - 1), &body);
	return t && strcmp(t, "A_Const") == 0 && json_object_object_get_ex(body, "boolval", &bv) &&
	       json_object_object_get_ex(bv, "boolval", &b) && json_object_get_boolean(b);
}

/* Session state a call of <name> (in <schema>, or NULL) leaves: the
 * session-level advisory locks whatever the schema (a function of that
 * name elsewhere may well wrap them), the unlock of all only from
 * pg_catalog. */
static void func_session(struct walk *w, const char *schema, const char *name, json_object *fc)
{
	static const char *const locks[] = {"pg_advisory_lock", "pg_advisory_lock_shared",
	                                    "pg_try_advisory_lock", "pg_try_advisory_lock_shared"};
	bool builtin = !schema || strcmp(schema, "pg_catalog") == 0;

	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++)
		if (strcmp(name, locks[i]) == 0)
			w->out->session |= STATS_SS_ADVISORY;
	if (builtin && strcmp(name, "pg_advisory_unlock_all") == 0)
		w->out->session |= STATS_SS_UNLOCK_ALL;
	/* one lock of several: whether any is left, only the server knows */
	if (builtin && (strcmp(name, "pg_advisory_unlock") == 0 ||
	                strcmp(name, "pg_advisory_unlock_shared") == 0))
		w->out->session |= STATS_SS_MAY_END;
	/* whatever the schema: a wrapper of another name is not seen, one of
	 * this name is taken for what it says */
	if (strcmp(name, "currval") == 0 || strcmp(name, "lastval") == 0)
		w->out->session |= STATS_SS_SEQ_READ;
	if (strcmp(name, "nextval") == 0 || strcmp(name, "setval") == 0)
		w->out->session |= STATS_SS_SEQ_SET;
	if (strcmp(name, "set_config") == 0 && !last_arg_true(fc))
		w->out->session |= STATS_SS_SET | STATS_SS_SET_UNNAMED;
}

static void func_call(struct walk *w, json_object *fc)
{
	json_object *names, *s;
	const char *parts[2] = {NULL, NULL};
	size_t n;

	if (!json_object_object_get_ex(fc, "funcname", &names) ||
	    !json_object_is_type(names, json_type_array))
		goto unknown_fn;
	n = json_object_array_length(names);
	if (n < 1 || n > 2)
		goto unknown_fn;
	for (size_t i = 0; i < n; i++) {
		if (!wrapped_type(json_object_array_get_idx(names, i), &s))
			goto unknown_fn;
		parts[i] = get_str(s, "sval");
		if (!parts[i])
			goto unknown_fn;
	}
	func_session(w, n == 2 ? parts[0] : NULL, parts[n - 1], fc);
	if (n == 2 && strcmp(parts[0], "pg_catalog") != 0)
		goto unknown_fn;
	if (!bsearch(parts[n - 1], builtin_fns, sizeof(builtin_fns) / sizeof(builtin_fns[0]),
	             sizeof(builtin_fns[0]), cmp_name))
		goto unknown_fn;
	if (bsearch(parts[n - 1], immutable_fns, sizeof(immutable_fns) / sizeof(immutable_fns[0]),
	            sizeof(immutable_fns[0]), cmp_name))
		return;
	w->out->volatile_fn = true; /* PostgreSQL's own, not immutable: it writes no table */
	return;
unknown_fn:
	/* a function of the user's, or of an extension: it may write anything */
	w->out->unknown_fn = true;
	w->out->volatile_fn = true;
}

/* 'now'::timestamptz and its kin are read when the statement runs. */
static void type_cast(struct walk *w, json_object *tc)
{
	static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};
	json_object *arg, *body, *sv;
	const char *type, *s;

	if (!json_object_object_get_ex(tc, "arg", &arg))
		return;
	type = wrapped_type(arg, &body);
	if (!type || strcmp(type, "A_Const") != 0 || !json_object_object_get_ex(body, "sval", &sv))
		return;
	s = get_str(sv, "sval");
	for (size_t i = 0; s && i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i]) == 0)
			w->out->volatile_fn = true;
}

/* EXPLAIN runs its statement only with ANALYZE (not "ANALYZE false"). */
static bool explain_analyzes(json_object *ex)
{
	json_object *opts, *body, *arg, *abody;
	size_t n;

	if (!json_object_object_get_ex(ex, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array))
		return false;
	n = json_object_array_length(opts);
	for (size_t i = 0; i < n; i++) {
		const char *t = wrapped_type(json_object_array_get_idx(opts, i), &body);
		const char *name = t ? get_str(body, "defname") : NULL;
		if (!name || strcmp(name, "analyze") != 0)
			continue;
		if (!json_object_object_get_ex(body, "arg", &arg))
			return true;
		t = wrapped_type(arg, &abody);
		if (t && strcmp(t, "String") == 0) {
			const char *v = get_str(abody, "sval");
			return !(v && (strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0 ||
			               strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0));
		}
		if (t && strcmp(t, "Integer") == 0) {
			json_object *iv;
			return json_object_object_get_ex(abody, "ival", &iv) &&
			       json_object_get_int64(iv) != 0;
		}
		return true;
	}
	return false;
}

static void walk_value(struct walk *w, const char *key, json_object *v, unsigned flags);

static void walk_fields(struct walk *w, json_object *obj, unsigned flags)
{
	struct json_object_iter it;

	json_object_object_foreachC(obj, it)
	{
		walk_value(w, it.key, it.val, flags);
	}
}

/* The fields of a statement that name the relation it writes. */
static bool target_field(const char *key)
{
	static const char *const keys[] = {"objects", "relation", "relations", "sequence",
	                                   "table",   "typevar",  "view"};

	return bsearch(key, keys, sizeof(keys) / sizeof(keys[0]), sizeof(keys[0]), cmp_name);
}

/* A statement node, at the top or nested (CTE, EXPLAIN, COPY (...)). */
static void walk_stmt(struct walk *w, const char *type, const struct stmt_kind *k,
                      json_object *body, unsigned flags)
{
	struct stats_shape_info *out = w->out;
	unsigned child = flags & ~W_TARGET;
	bool writes = k->flags & ST_WRITES;
	struct json_object_iter it;

	if ((k->flags & ST_DML) && (flags & W_IN_CTE))
		out->modifying_cte = true;
	if (k->flags & ST_NOEXEC)
		child |= W_NOEXEC;
	if (strcmp(type, "ExplainStmt") == 0 && !explain_analyzes(body))
		child |= W_NOEXEC;
	if (strcmp(type, "DoStmt") == 0 || strcmp(type, "CallStmt") == 0)
		out->volatile_fn = out->unknown_fn = true;
	if (strcmp(type, "LockStmt") == 0)
		out->locking = true;
	bool copy_from = strcmp(type, "CopyStmt") == 0 && get_bool(body, "is_from");
	if (copy_from)
		writes = true;
	bool drop = strcmp(type, "DropStmt") == 0 && drop_of_relation(body);
	if (writes && !(flags & W_NOEXEC))
		out->writes = true;

	json_object_object_foreachC(body, it)
	{
		unsigned f = child;
		/* its own relation is written if it runs, whatever its body does */
		if (((k->flags & ST_TARGET) || copy_from) && target_field(it.key))
			f = (flags & ~W_TARGET) | W_TARGET;
		if (drop && strcmp(it.key, "objects") == 0 &&
		    json_object_is_type(it.val, json_type_array)) {
			size_t n = json_object_array_length(it.val);
			for (size_t i = 0; i < n; i++)
				name_list(w, json_object_array_get_idx(it.val, i), f);
			continue;
		}
		walk_value(w, it.key, it.val, f);
	}
}

static void walk_node(struct walk *w, const char *type, json_object *body, unsigned flags)
{
	const struct stmt_kind *k;

	if (strcmp(type, "RangeVar") == 0) {
		range_var(w, body, flags); /* nothing inside it names a relation */
		return;
	}
	flags &= ~W_TARGET;
	if (strcmp(type, "FuncCall") == 0) {
		func_call(w, body);
	} else if (strcmp(type, "SQLValueFunction") == 0) {
		w->out->volatile_fn = true;
	} else if (strcmp(type, "TypeCast") == 0) {
		type_cast(w, body);
	} else if (strcmp(type, "LockingClause") == 0) {
		/* its "OF x" names range-table entries (aliases), not relations */
		w->out->locking = true;
		return;
	} else if (strcmp(type, "IntoClause") == 0) {
		/* SELECT INTO / CREATE TABLE AS: the new table is written */
		if (!(flags & W_NOEXEC))
			w->out->writes = true;
		json_object *rel;
		if (json_object_object_get_ex(body, "rel", &rel))
			range_var(w, rel, flags | W_TARGET);
		return; /* nothing else in it names a relation */
	} else if (strcmp(type, "CommonTableExpr") == 0) {
		json_object *q;
		if (json_object_object_get_ex(body, "ctequery", &q))
			walk_value(w, "ctequery", q, flags | W_IN_CTE);
		return;
	} else if ((k = find_kind(type)) != NULL) {
		walk_stmt(w, type, k, body, flags);
		return;
	}
	walk_fields(w, body, flags);
}

/*
 * <key> is the field holding <v>. Fields of a fixed message type are
 * written without the {"Type": ...} wrapper; those that matter are told
 * by their field name, and a RangeVar by its shape.
 */
static void walk_value(struct walk *w, const char *key, json_object *v, unsigned flags)
{
	json_object *body;
	const char *type;

	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			walk_value(w, key, json_object_array_get_idx(v, i), flags);
		return;
	}
	if (!json_object_is_type(v, json_type_object))
		return;
	if ((type = wrapped_type(v, &body)) != NULL) {
		walk_node(w, type, body, flags);
		return;
	}
	if (json_object_object_get_ex(v, "relname", &body) &&
	    json_object_object_get_ex(v, "relpersistence", &body))
		type = "RangeVar";
	else if (strcmp(key, "funccall") == 0)
		type = "FuncCall";
	else if (strcmp(key, "intoClause") == 0 || strcmp(key, "into") == 0)
		type = "IntoClause";
	else if (strcmp(key, "larg") == 0 || strcmp(key, "rarg") == 0)
		type = "SelectStmt";
	if (type) {
		walk_node(w, type, v, flags);
		return;
	}
	walk_fields(w, v, flags & ~W_TARGET);
}

static uint8_t class_of_kw(uint8_t kw)
{
	switch (kw) {
	case PROTO_KW_SELECT:
	case PROTO_KW_WITH:
	case PROTO_KW_VALUES:
	case PROTO_KW_TABLE:
		return STATS_CL_SELECT;
	case PROTO_KW_INSERT:
		return STATS_CL_INSERT;
	case PROTO_KW_UPDATE:
		return STATS_CL_UPDATE;
	case PROTO_KW_DELETE:
		return STATS_CL_DELETE;
	case PROTO_KW_MERGE:
		return STATS_CL_MERGE;
	case PROTO_KW_COPY:
		return STATS_CL_COPY;
	case PROTO_KW_BEGIN:
	case PROTO_KW_START:
	case PROTO_KW_COMMIT:
	case PROTO_KW_END:
	case PROTO_KW_ROLLBACK:
	case PROTO_KW_ABORT:
	case PROTO_KW_SAVEPOINT:
	case PROTO_KW_RELEASE:
		return STATS_CL_TCL;
	case PROTO_KW_CREATE:
	case PROTO_KW_ALTER:
	case PROTO_KW_DROP:
	case PROTO_KW_TRUNCATE:
	case PROTO_KW_GRANT:
	case PROTO_KW_REVOKE:
	case PROTO_KW_COMMENT:
	case PROTO_KW_REFRESH:
	case PROTO_KW_REINDEX:
	case PROTO_KW_CLUSTER:
		return STATS_CL_DDL;
	case PROTO_KW_PREPARE: /* PREPARE TRANSACTION cannot be told apart here */
	case PROTO_KW_EXECUTE:
	case PROTO_KW_DEALLOCATE:
	case PROTO_KW_SET:
	case PROTO_KW_RESET:
	case PROTO_KW_SHOW:
	case PROTO_KW_EXPLAIN:
	case PROTO_KW_VACUUM:
	case PROTO_KW_ANALYZE:
	case PROTO_KW_LISTEN:
	case PROTO_KW_UNLISTEN:
	case PROTO_KW_NOTIFY:
	case PROTO_KW_DO:
	case PROTO_KW_CALL:
	case PROTO_KW_LOCK:
	case PROTO_KW_DISCARD:
	case PROTO_KW_DECLARE:
	case PROTO_KW_FETCH:
	case PROTO_KW_MOVE:
	case PROTO_KW_CLOSE:
	case PROTO_KW_CHECKPOINT:
		return STATS_CL_UTILITY;
	default:
		return STATS_CL_OTHER;
	}
}

/* The class of a top-level statement node. */
static uint8_t class_of_stmt(const char *type, json_object *body)
{
	const struct stmt_kind *k = find_kind(type);

	if (!k)
		return STATS_CL_OTHER;
	if (strcmp(type, "VariableSetStmt") == 0) {
		const char *name = get_str(body, "name");
		if (name &&
		    (strcmp(name, "TRANSACTION") == 0 || strcmp(name, "TRANSACTION SNAPSHOT") == 0))
			return STATS_CL_TCL;
	}
	return k->cls;
}

/* Is the relation <rv> (a RangeVar body) temporary? */
static bool rel_temp(json_object *rv)
{
	const char *pers = get_str(rv, "relpersistence");
	const char *schema = get_str(rv, "schemaname");

	return (pers && *pers == 't') || (schema && strncmp(schema, "pg_temp", 7) == 0);
}

/* Does the name list <list> ([schema, name]) start with pg_temp? */
static bool names_temp(json_object *list)
{
	json_object *s;
	const char *first;

	if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) < 2 ||
	    !wrapped_type(json_object_array_get_idx(list, 0), &s))
		return false;
	first = get_str(s, "sval");
	return first && strncmp(first, "pg_temp", 7) == 0;
}

/* A CREATE of a temporary object that outlives its transaction (ON COMMIT
 * DROP ones do not). */
static bool creates_temp(const char *type, json_object *body)
{
	json_object *v, *into;

	if (strcmp(type, "CreateStmt") == 0) {
		const char *oc = get_str(body, "oncommit");
		return json_object_object_get_ex(body, "relation", &v) && rel_temp(v) &&
		       !(oc && strcmp(oc, "ONCOMMIT_DROP") == 0);
	}
	if (strcmp(type, "ViewStmt") == 0)
		return json_object_object_get_ex(body, "view", &v) && rel_temp(v);
	if (strcmp(type, "CreateSeqStmt") == 0)
		return json_object_object_get_ex(body, "sequence", &v) && rel_temp(v);
	if (strcmp(type, "CreateTableAsStmt") == 0 || strcmp(type, "SelectStmt") == 0) {
		const char *oc;
		if (!json_object_object_get_ex(
		            body, strcmp(type, "SelectStmt") == 0 ? "intoClause" : "into", &into) ||
		    !json_object_object_get_ex(into, "rel", &v))
			return false;
		oc = get_str(into, "onCommit");
		return rel_temp(v) && !(oc && strcmp(oc, "ONCOMMIT_DROP") == 0);
	}
	if (strcmp(type, "CreateFunctionStmt") == 0)
		return json_object_object_get_ex(body, "funcname", &v) && names_temp(v);
	/* any other object made in pg_temp by its qualified name: a type,
	 * domain, statistics object, operator, aggregate, collation ... */
	if (strcmp(type, "CreateStatsStmt") == 0 || strcmp(type, "DefineStmt") == 0)
		return json_object_object_get_ex(body, "defnames", &v) && names_temp(v);
	if (strcmp(type, "CreateDomainStmt") == 0)
		return json_object_object_get_ex(body, "domainname", &v) && names_temp(v);
	if (strcmp(type, "CreateEnumStmt") == 0 || strcmp(type, "CreateRangeStmt") == 0)
		return json_object_object_get_ex(body, "typeName", &v) && names_temp(v);
	if (strcmp(type, "CompositeTypeStmt") == 0)
		return json_object_object_get_ex(body, "typevar", &v) && rel_temp(v);
	if (strcmp(type, "CreateConversionStmt") == 0)
		return json_object_object_get_ex(body, "conversion_name", &v) && names_temp(v);
	return false;
}

/* DROP of a kind of object a temporary one can be (CREATE TEMP ..., or
 * made in pg_temp): a table, view, sequence, index or function. */
static bool drop_may_end_temp(json_object *drop)
{
	static const char *const kinds[] = {
	        "OBJECT_FUNCTION", "OBJECT_INDEX",     "OBJECT_MATVIEW",   "OBJECT_PROCEDURE",
	        "OBJECT_ROUTINE",  "OBJECT_SEQUENCE",  "OBJECT_TABLE",     "OBJECT_TYPE",
	        "OBJECT_VIEW",     "OBJECT_AGGREGATE", "OBJECT_DOMAIN",    "OBJECT_STATISTIC_EXT",
	        "OBJECT_OPERATOR", "OBJECT_COLLATION", "OBJECT_CONVERSION"};
	const char *t = get_str(drop, "removeType");

	for (size_t i = 0; t && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(t, kinds[i]) == 0)
			return true;
	return false;
}

/* SET ROLE's argument is the word NONE, not the string 'none' (which the
 * fingerprint would not tell from any other role name). */
static bool role_none(json_object *body, const char *sql, size_t len)
{
	json_object *args, *c, *sv, *loc;
	const char *t;
	const char *v;

	if (!json_object_object_get_ex(body, "args", &args) ||
	    !json_object_is_type(args, json_type_array) || json_object_array_length(args) != 1)
		return false;
	t = wrapped_type(json_object_array_get_idx(args, 0), &c);
	if (!t || strcmp(t, "A_Const") != 0 || !json_object_object_get_ex(c, "sval", &sv) ||
	    !(v = get_str(sv, "sval")) || strcmp(v, "none") != 0 ||
	    !json_object_object_get_ex(c, "location", &loc))
		return false;
	int64_t at = json_object_get_int64(loc);
	return at >= 0 && (size_t)at + 4 <= len && strncasecmp(sql + at, "none", 4) == 0;
}

/* What a SET / RESET leaves; <out> has what earlier statements of the
 * text left. */
static uint32_t set_session(json_object *body, const char *sql, size_t len,
                            struct stats_shape_info *out)
{
	const char *kind = get_str(body, "kind"), *name = get_str(body, "name");
	bool reset;

	if (get_bool(body, "is_local") || !kind)
		return 0;
	if (strcmp(kind, "VAR_RESET_ALL") == 0)
		return STATS_SS_RESET_ALL;
	if (!name || strcmp(name, "TRANSACTION") == 0 || strcmp(name, "TRANSACTION SNAPSHOT") == 0)
		return 0;
	/* back to the session default, which every client of the pool shares */
	reset = strcmp(kind, "VAR_RESET") == 0 || strcmp(kind, "VAR_SET_DEFAULT") == 0;
	if (strcmp(name, "role") == 0)
		return reset || role_none(body, sql, len) ? STATS_SS_RESET_ROLE : STATS_SS_ROLE;
	if (strcmp(name, "session_authorization") == 0)
		return reset ? STATS_SS_RESET_AUTH : STATS_SS_AUTH;
	if (reset) {
		/* named for a parameter sluice follows (extra_float_digits) */
		if (!out->set_name && !(out->session & STATS_SS_SET))
			out->set_name = strdup(name);
		return STATS_SS_SET_RESET;
	}
	if (out->session & STATS_SS_SET)
		return STATS_SS_SET | STATS_SS_SET_UNNAMED; /* a second one: <set_name> is one */
	free(out->set_name);                                /* a RESET's before */
	out->set_name = strdup(name);
	return out->set_name ? STATS_SS_SET : STATS_SS_SET | STATS_SS_SET_UNNAMED;
}

uint64_t stats_name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name)) | 1;
}

/* The name field <key> of <body> is what the statement is about. */
static void obj_name(struct stats_shape_info *out, json_object *body, const char *key)
{
	const char *name = get_str(body, key);

	if (name && !out->obj_hash)
		out->obj_hash = stats_name_hash(name);
}

/* The session state the top-level statement <type> leaves (function calls
 * anywhere in it are seen by func_call). */
static uint32_t stmt_session(const char *type, json_object *body, const char *sql, size_t len,
                             struct stats_shape_info *out)
{
	json_object *v;

	if (creates_temp(type, body))
		return STATS_SS_TEMP;
	if (strcmp(type, "VariableSetStmt") == 0)
		return set_session(body, sql, len, out);
	if (strcmp(type, "ListenStmt") == 0)
		return STATS_SS_LISTEN;
	if (strcmp(type, "DoStmt") == 0)
		return STATS_SS_CODE; /* the body, each text's own, is read per text */
	if (strcmp(type, "UnlistenStmt") == 0)
		return get_str(body, "conditionname") ? STATS_SS_MAY_END : STATS_SS_UNLISTEN_ALL;
	/* it may be of a temporary object (unqualified names are looked up
	 * in pg_temp first) */
	if (strcmp(type, "DropStmt") == 0 && drop_may_end_temp(body))
		return STATS_SS_MAY_END;
	if (strcmp(type, "DeclareCursorStmt") == 0) {
		if (!json_object_object_get_ex(body, "options", &v) ||
		    !(json_object_get_int64(v) & 0x20)) /* CURSOR_OPT_HOLD */
			return 0;
		obj_name(out, body, "portalname");
		return STATS_SS_CURSOR;
	}
	if (strcmp(type, "ClosePortalStmt") == 0) {
		obj_name(out, body, "portalname");
		return get_str(body, "portalname") ? STATS_SS_CLOSE : STATS_SS_CLOSE_ALL;
	}
	if (strcmp(type, "PrepareStmt") == 0) {
		obj_name(out, body, "name");
		return STATS_SS_PREPARE;
	}
	if (strcmp(type, "DeallocateStmt") == 0) {
		obj_name(out, body, "name");
		return get_str(body, "name") ? STATS_SS_DEALLOCATE : STATS_SS_DEALLOCATE_ALL;
	}
	if (strcmp(type, "LoadStmt") == 0)
		return STATS_SS_LOAD;
	if (strcmp(type, "DiscardStmt") == 0) {
		const char *t = get_str(body, "target");
		if (t && strcmp(t, "DISCARD_ALL") == 0)
			return STATS_SS_DISCARD_ALL;
		if (t && strcmp(t, "DISCARD_TEMP") == 0)
			return STATS_SS_DISCARD_TEMP;
		return 0;
	}
	if (strcmp(type, "TransactionStmt") == 0) {
		const char *k = get_str(body, "kind");
		return k && (strcmp(k, "TRANS_STMT_ROLLBACK") == 0 ||
		             strcmp(k, "TRANS_STMT_ROLLBACK_TO") == 0 ||
		             strcmp(k, "TRANS_STMT_PREPARE") == 0)
		               ? STATS_SS_ROLLBACK
		               : 0;
	}
	return 0;
}

/* Skip blanks and comments; the next word (letters, digits, _) lower-cased
 * into <word> (empty at the end). */
static const char *next_word(const char *p, const char *end, char *word, size_t cap)
{
	size_t n = 0;

	for (;;) {
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
		} else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			const char *e = p + 2;
			while (end - e >= 2 && !(e[0] == '*' && e[1] == '/'))
				e++;
			p = end - e >= 2 ? e + 2 : end;
		} else {
			break;
		}
	}
	while (p < end && (isalnum((unsigned char)*p) || *p == '_') && n + 1 < cap)
		word[n++] = (char)tolower((unsigned char)*p++);
	word[n] = '\0';
	return p;
}

/* Does <needle> occur in <sql> (case-insensitive)? */
static bool has_text(const char *sql, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(sql + i, needle, n) == 0)
			return true;
	return false;
}

/*
 * Text the parser could not read (a prefix of a long statement, or syntax
 * it does not know): judged by its leading words, erring on "creates", so
 * that transaction pooling keeps such a client rather than lose its state.
 */
static uint32_t text_session(const char *sql, size_t len)
{
	const char *end = sql + len, *p;
	char w1[32], w2[32], w3[32];
	uint32_t ss = 0;

	p = next_word(sql, end, w1, sizeof(w1));
	p = next_word(p, end, w2, sizeof(w2));
	(void)next_word(p, end, w3, sizeof(w3));
	if (strcmp(w1, "listen") == 0)
		ss |= STATS_SS_LISTEN;
	else if (strcmp(w1, "declare") == 0)
		ss |= STATS_SS_CURSOR;
	else if (strcmp(w1, "prepare") == 0)
		ss |= strcmp(w2, "transaction") == 0 ? STATS_SS_ROLLBACK : STATS_SS_PREPARE;
	else if (strcmp(w1, "load") == 0)
		ss |= STATS_SS_LOAD;
	else if (strcmp(w1, "set") == 0) {
		if (strcmp(w2, "role") == 0)
			ss |= STATS_SS_ROLE;
		else if (strcmp(w2, "session") == 0 && strcmp(w3, "authorization") == 0)
			ss |= STATS_SS_AUTH;
		else if (strcmp(w2, "local") != 0 && strcmp(w2, "transaction") != 0)
			ss |= STATS_SS_SET | STATS_SS_SET_UNNAMED;
	} else if (strcmp(w1, "create") == 0) {
		if (strcmp(w2, "temp") == 0 || strcmp(w2, "temporary") == 0 ||
		    strcmp(w2, "local") == 0 || strcmp(w2, "global") == 0 ||
		    (strcmp(w2, "or") == 0 &&
		     (has_text(sql, len, " temp ") || has_text(sql, len, " temporary "))) ||
		    has_text(sql, len, "pg_temp"))
			ss |= STATS_SS_TEMP;
	} else if (strcmp(w1, "rollback") == 0 || strcmp(w1, "abort") == 0) {
		ss |= STATS_SS_ROLLBACK;
	} else if (strcmp(w1, "do") == 0) {
		ss |= STATS_SS_CODE;
	} else if (strcmp(w1, "unlisten") == 0 || strcmp(w1, "drop") == 0) {
		ss |= STATS_SS_MAY_END;
	}
	if (has_text(sql, len, "advisory_unlock"))
		ss |= STATS_SS_MAY_END;
	if (has_text(sql, len, "currval") || has_text(sql, len, "lastval"))
		ss |= STATS_SS_SEQ_READ;
	if (has_text(sql, len, "nextval") || has_text(sql, len, "setval"))
		ss |= STATS_SS_SEQ_SET;
	if (has_text(sql, len, "advisory_lock"))
		ss |= STATS_SS_ADVISORY;
	if (has_text(sql, len, "set_config"))
		ss |= STATS_SS_SET | STATS_SS_SET_UNNAMED;
	return ss;
}

/*
 * <json> as a tree, NULL if it cannot be read. The tokener's stack is
 * allocated (zeroed) at its full depth, which for CLASSIFY_MAX_DEPTH
 * costs more than the rest of the work: a shallow one is tried first.
 */
static json_object *load_json(const char *json)
{
	static const int depths[] = {CLASSIFY_SHALLOW_DEPTH, CLASSIFY_MAX_DEPTH};
	size_t len = strlen(json);
	json_object *root = NULL;

	if (len > INT_MAX)
		return NULL;
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		struct json_tokener *tok = json_tokener_new_ex(depths[i]);
		if (!tok)
			return NULL;
		root = json_tokener_parse_ex(tok, json, (int)len);
		enum json_tokener_error err = json_tokener_get_error(tok);
		json_tokener_free(tok);
		if (root && err == json_tokener_success)
			return root;
		if (root)
			json_object_put(root);
		root = NULL;
		if (err != json_tokener_error_depth)
			break;
	}
	return NULL;
}

/* Walk the parse tree in <json> of <sql> (<len> bytes); false if it cannot
 * be read. */
static bool read_tree(const char *json, const char *sql, size_t len, struct stats_shape_info *out)
{
	json_object *root = load_json(json), *stmts;
	struct walk w = {.out = out};
	bool ok = false;

	if (!root)
		return false;
	ok = true;
	out->cls = STATS_CL_OTHER;
	if (!json_object_object_get_ex(root, "stmts", &stmts) ||
	    !json_object_is_type(stmts, json_type_array))
		goto out; /* no statement at all: blank or only comments */
	find_ctes(&w, stmts);
	size_t n = json_object_array_length(stmts);
	for (size_t i = 0; i < n; i++) {
		json_object *raw = json_object_array_get_idx(stmts, i), *stmt, *body;
		const char *type;
		if (!json_object_object_get_ex(raw, "stmt", &stmt) ||
		    !(type = wrapped_type(stmt, &body)))
			continue;
		if (i == 0)
			out->cls = class_of_stmt(type, body);
		out->session |= stmt_session(type, body, sql, len, out);
		walk_node(&w, type, body, 0);
	}
out:
	free(w.ctes);
	json_object_put(root);
	return ok;
}

int stats_classify(const char *sql, size_t len, uint8_t kw, struct stats_shape_info *out)
{
	PgQueryParseResult pr;
	PgQueryFingerprintResult fr;
	char *text;
	bool ok;

	memset(out, 0, sizeof(*out));
	out->cls = class_of_kw(kw);
	/* libpg_query reads a C string; a NUL inside the text ends it there */
	len = strnlen(sql, len);
	text = malloc(len + 1);
	if (!text)
		return -1;
	memcpy(text, sql, len);
	text[len] = '\0';

	pr = pg_query_parse(text);
	ok = !pr.error && pr.parse_tree && read_tree(pr.parse_tree, text, len, out);
	pg_query_free_parse_result(pr);
	if (ok) {
		fr = pg_query_fingerprint(text);
		if (!fr.error)
			out->pg_fp = fr.fingerprint;
		pg_query_free_fingerprint_result(fr);
		out->parsed = true;
	}
	if (!ok) {
		/* what read_tree gathered before failing goes; the class stays */
		stats_shape_info_free(out);
		memset(out, 0, sizeof(*out));
		out->cls = class_of_kw(kw);
		out->session = text_session(text, len);
		free(text);
		return -1;
	}
	free(text);
	return 0;
}

void stats_shape_info_free(struct stats_shape_info *info)
{
	if (!info)
		return;
	for (uint8_t i = 0; i < info->nread; i++)
		free(info->read[i]);
	for (uint8_t i = 0; i < info->nwritten; i++)
		free(info->written[i]);
	info->nread = info->nwritten = 0;
	free(info->set_name);
	info->set_name = NULL;
}
