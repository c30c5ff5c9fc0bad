/*
 * slots.h -- the handle slot table (private to core/handle.c and core/tracker.c).
 */
#ifndef LX_CORE_SLOTS_H
#define LX_CORE_SLOTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/node.h"

typedef struct lx_slot {
    _Atomic uint32_t gen;      /* bumped on release; a handle carries the gen it was made with */
    _Atomic uint8_t kept;
    _Atomic(lx_node *) node;   /* one reference while the slot is live */
} lx_slot;

#define LX_SLOT_CHUNK_BITS 12
#define LX_SLOT_CHUNK (1u << LX_SLOT_CHUNK_BITS)
#define LX_SLOT_MAX_CHUNKS (1u << 18)

extern _Atomic(lx_slot *) lx_slot_chunks[LX_SLOT_MAX_CHUNKS];

static inline lx_slot *lx_slot_at(uint32_t idx) {
    lx_slot *c = atomic_load_explicit(&lx_slot_chunks[idx >> LX_SLOT_CHUNK_BITS],
                                      memory_order_acquire);
    return c ? &c[idx & (LX_SLOT_CHUNK - 1)] : 0;
}

/* Decodes a handle to its live slot (generation checked), or NULL. */
lx_slot *lx_slot_of(lx_array a);
/* Releases the slot's node and recycles the slot on this thread. */
void lx_slot_release(uint32_t idx);
/* Returns this thread's spare slots to the global pool (thread exit). */
void lx_slot_return_spares(void);

#endif
