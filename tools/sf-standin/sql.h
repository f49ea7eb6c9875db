/*
 * The stand-in's SQL engine: Snowflake statements run on SQLite after a
 * small, documented translation (docs/snowflake.md, "Stand-in"). Each
 * Snowflake schema is an attached SQLite file DIR/<SCHEMA>.sqlite; the
 * PUBLIC schema and the stand-in's own tables (channels, pipes, schemas)
 * live in DIR/standin.sqlite, so everything survives a restart.
 */
#ifndef SF_STANDIN_SQL_H
#define SF_STANDIN_SQL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sf_sql sf_sql;

/* The outcome of one statement. */
typedef struct sf_exec {
  bool failed;
  char code[16], sql_state[8], message[512];
  json_t *row_type;  /* array of column descriptions */
  json_t *rows;      /* array of arrays of string|null */
  json_t *stats;     /* object or NULL */
} sf_exec;

int sf_sql_open(const char *dir, sf_sql **out, char *err, size_t errlen);
sf_sql *sf_sql_close(sf_sql *q);
sqlite3 *sf_sql_db(sf_sql *q);

/*
 * Runs one statement (no trailing ';' needed). bindings: the validated
 * "bindings" object of the request, or NULL. in_multi: BEGIN/COMMIT/
 * ROLLBACK are allowed (inside a multi-statement request). out is filled
 * either with a result or with failed = true and code/sqlState/message.
 */
void sf_sql_exec(sf_sql *q, const char *schema, const char *sql, json_t *bindings, bool in_multi, sf_exec *out);
void sf_exec_clear(sf_exec *e);

/* Splits a multi-statement text on ';' outside quotes and comments. Returns a JSON array of strings. */
json_t *sf_sql_split(const char *sql);

/* Seconds a "CALL SYSTEM$WAIT(n)" / "SELECT SYSTEM$WAIT(n)" statement takes, or -1. */
double sf_sql_wait_seconds(const char *sql);

/* The table a pipe loads into: "T-STREAMING" -> T, or a pipe made by CREATE PIPE. NULL if unknown. */
char *sf_sql_pipe_table(sf_sql *q, const char *schema, const char *pipe);

/* Whether schema.table exists. */
bool sf_sql_table_exists(sf_sql *q, const char *schema, const char *table);

#endif
