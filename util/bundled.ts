// Whether this code runs from the single-file bundle (`build/bundle.ts`), which defines
// the constants below at build time, or from the TypeScript sources, where they do not exist.
declare const KAIROS_P2P_BUNDLED: boolean | undefined
declare const KAIROS_P2P_SELF_CONTAINED: boolean | undefined

/** True inside the bundle, false when running the sources. */
export const BUNDLED: boolean = typeof KAIROS_P2P_BUNDLED === 'boolean' && KAIROS_P2P_BUNDLED

/**
 * True inside the self-contained executable (`build/sea.ts`), which carries no checkout:
 * commands that need one (the lab) are left out of it.
 */
export const SELF_CONTAINED: boolean = typeof KAIROS_P2P_SELF_CONTAINED === 'boolean' && KAIROS_P2P_SELF_CONTAINED
