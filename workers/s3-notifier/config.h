/*
 * hl-s3-notifier's configuration table and its translation into the core's
 * options, apart from main.c so that a unit test can load it.
 */
#ifndef HL_NOTIFIER_CONFIG_H
#define HL_NOTIFIER_CONFIG_H

#include "notifier.h"

#include "hl/config.h"
#include "hl/metrics.h"
#include "hl/s3.h"

/* The HL_* variables of hl-s3-notifier. */
extern const hl_config_spec hl_notifier_config_spec;

/*
 * Fills *o from cfg (strings borrowed from cfg; reg borrowed). *s3 receives
 * the S3 settings when a source needs them (HL_NOTIFIER_S3_BUCKET or
 * HL_NOTIFIER_SQS_QUEUE_URL set) and o->s3 points at it. 0, or HL_ECONFIG
 * with a reason in err.
 */
int hl_notifier_opts_from_config(const hl_config *cfg, hl_metrics *reg, hl_notifier_opts *o,
                                 hl_s3_config *s3, char *err, size_t errlen);

#endif
