// Whether this code runs from the single-file bundle (`build/bundle.ts`), which defines
// the constant below at build time, or from the TypeScript sources, where it does not exist.
declare const KAIROS_P2P_BUNDLED: boolean | undefined

/** True inside the bundle, false when running the sources. */
export const BUNDLED: boolean = typeof KAIROS_P2P_BUNDLED === 'boolean' && KAIROS_P2P_BUNDLED
