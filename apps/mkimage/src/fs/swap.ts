import { run } from '../tools.js';
import { type BuildContext, type FilesystemBuilder, stableUuid } from './builder.js';

/** Linux swap through mkswap in a scratch file (mkswap has no offset option). */
export const swapBuilder: FilesystemBuilder = {
  inPlace: false,
  async build(ctx: BuildContext) {
    const uuid = ctx.fs.options.uuid ?? stableUuid(ctx.id, 'swap-uuid');
    const args = ['-U', uuid];
    if (ctx.fs.options.label) args.push('-L', ctx.fs.options.label);
    await run('mkswap', [...args, ctx.target]);
    return { ...ctx.fs.options, uuid };
  },
};

/** Raw partition: only the prefill (or zeros). */
export const rawBuilder: FilesystemBuilder = {
  inPlace: true,
  async build(ctx: BuildContext) {
    return { ...ctx.fs.options };
  },
};
