/*
 * hl-api-gateway's HTTP side: the route table, FHIR read and search,
 * ingestion, authentication, rate limits, audit and metrics, on one libuv
 * loop (libstream's hl_http server). main.c builds one from the
 * configuration and runs the loop; tests build one on their own loop.
 */
#ifndef HL_API_GATEWAY_H
#define HL_API_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>

#include "hl/config.h"
#include "hl/metrics.h"

/* The configuration variables of the gateway (its whole table but logging). */
extern const hl_config_var hl_api_config_vars[];
extern const size_t hl_api_nconfig_vars;

typedef struct hl_api_gw hl_api_gw;

/*
 * Builds the gateway from cfg (borrowed for its lifetime) on loop; reg is
 * borrowed and receives the gateway's metrics. 0, HL_ECONFIG (message in
 * err), -ENOMEM.
 */
int hl_api_gw_new(uv_loop_t *loop, const hl_config *cfg, hl_metrics *reg, hl_api_gw **out, char *err,
                  size_t errlen);
/* Listens on HL_API_ADDR (or addr when not NULL). 0 or a libuv error. */
int hl_api_gw_listen(hl_api_gw *gw, const char *addr);
int hl_api_gw_port(const hl_api_gw *gw);
/* Graceful drain: stop accepting, finish in-flight requests, then done(ud). */
void hl_api_gw_drain(hl_api_gw *gw, void (*done)(void *ud), void *ud);
/* Frees; after drain's done (or if never listening). NULL-safe, returns NULL. */
hl_api_gw *hl_api_gw_free(hl_api_gw *gw);

/* One route of the table: for the OpenAPI comparison test and the docs. */
typedef struct hl_api_route_info {
  const char *method;
  const char *pattern; /* "/v1/fhir/{type}/{id}" */
  const char *scope;   /* "none", "read", "ingest" */
} hl_api_route_info;
size_t hl_api_routes(const hl_api_route_info **out);

/* Writes the CapabilityStatement (compact JSON) to a malloc'ed string. */
char *hl_api_capability_statement(const char *base_url);

#endif
