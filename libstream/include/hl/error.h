/*
 * Error codes shared by every libstream module.
 *
 * Functions return 0 on success or a negative number on failure: either a
 * negative errno value (-ENOMEM, -EINVAL, ...) or one of the project codes
 * below, which live in a reserved range far from errno values. Outputs are
 * left untouched on failure. hl_strerror() names both kinds.
 */
#ifndef HL_ERROR_H
#define HL_ERROR_H

#define HL__ERR_BASE (-30000)

enum hl_error {
  HL_ECONFIG = HL__ERR_BASE - 1,       /* invalid configuration value */
  HL_EPARSE = HL__ERR_BASE - 2,        /* malformed input */
  HL_ELIMIT = HL__ERR_BASE - 3,        /* an input exceeded a configured limit */
  HL_EKAFKA = HL__ERR_BASE - 4,        /* librdkafka reported an error */
  HL_EOFFSET = HL__ERR_BASE - 5,       /* consumer offset out of range */
  HL_EHTTP = HL__ERR_BASE - 6,         /* HTTP protocol error */
  HL_ETIMEOUT = HL__ERR_BASE - 7,      /* a deadline passed */
  HL_ECLOSED = HL__ERR_BASE - 8,       /* the object is closing or closed */
  HL_EFATAL = HL__ERR_BASE - 9,        /* unrecoverable error, the process should stop */
  HL_ENOTFOUND = HL__ERR_BASE - 10,    /* no such item */
  HL_EIO = HL__ERR_BASE - 11,          /* I/O error from a remote service */
  HL__ERR_LAST = HL__ERR_BASE - 12
};

/* Returns a static, human-readable description of err (0, -errno or HL_E*). */
const char *hl_strerror(int err);

#endif
