/*
 * The notifier's routes on the admin server: POST /events/s3 receives S3
 * event notifications (s3events.h) and hands the created objects to the
 * core. Answers 202 {"accepted":n,"ignored":m}, 400 for a body that is not
 * a notification, 413 past HL_S3EVENTS_MAX_BODY, and 503 (retry later)
 * while the core's hand-over queue is full.
 */
#ifndef HL_NOTIFIER_ROUTES_H
#define HL_NOTIFIER_ROUTES_H

#include "notifier.h"

#include "hl/admin.h"

/* Adds the routes; n must outlive the admin server. 0 or a negative code. */
int hl_notifier_routes_add(hl_admin *admin, hl_notifier *n);

#endif
