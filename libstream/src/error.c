#include "hl/error.h"

#include <string.h>

const char *hl_strerror(int err) {
  switch (err) {
  case 0: return "success";
  case HL_ECONFIG: return "invalid configuration";
  case HL_EPARSE: return "malformed input";
  case HL_ELIMIT: return "limit exceeded";
  case HL_EKAFKA: return "kafka error";
  case HL_EOFFSET: return "consumer offset out of range";
  case HL_EHTTP: return "http protocol error";
  case HL_ETIMEOUT: return "timed out";
  case HL_ECLOSED: return "closed";
  case HL_EFATAL: return "fatal error";
  case HL_ENOTFOUND: return "not found";
  case HL_EIO: return "remote i/o error";
  default: break;
  }
  if (err < 0 && err > HL__ERR_BASE)
    return strerror(-err);
  return "unknown error";
}
