/* CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected as 0x82F63B78), the
 * checksum of every IPC frame and WAL record. Uses the SSE4.2 instruction when
 * the CPU has it and a slicing-by-8 table otherwise; both give identical results. */
#ifndef DE_CRC32C_H
#define DE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 for the first block, then the previous result.
 * crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable path alone, for tests that compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
