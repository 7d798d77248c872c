// Sources: Linux include/linux/swap.h (union swap_header: the signature occupies the last
// 10 bytes of the first page) and kernel/power/swap.c (hibernation signatures written there).
import { type BlockSource, readBytes } from '@diskube/core';

export interface SwapArea {
  /** Page size the signature was found at: the header occupies the first page. */
  pageSize: number;
  /** True when the area holds a hibernation image (it must then be kept whole). */
  hibernation: boolean;
  signature: string;
}

const SWAP_SIGNATURES = new Set(['SWAPSPACE2', 'SWAP-SPACE']);
// swsusp writes one of these in place of SWAPSPACE2 while an image is stored.
const HIBERNATION_SIGNATURES = ['S1SUSPEND', 'S2SUSPEND', 'ULSUSPEND', 'LINHIB0001'];
const PAGE_SIZES = [4096, 8192, 16384, 65536];

/** Recognises a Linux swap area by the signature at the end of its first page. */
export async function probeSwap(source: BlockSource): Promise<SwapArea | null> {
  for (const pageSize of PAGE_SIZES) {
    if (source.size < pageSize) break;
    const bytes = await readBytes(source, pageSize - 10, 10);
    const text = new TextDecoder('latin1').decode(bytes);
    if (SWAP_SIGNATURES.has(text)) return { pageSize, hibernation: false, signature: text };
    const hib = HIBERNATION_SIGNATURES.find((s) => text.endsWith(s) || text.startsWith(s));
    if (hib) return { pageSize, hibernation: true, signature: hib };
  }
  return null;
}
