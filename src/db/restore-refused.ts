/** A backup that cannot be restored here, or a database it cannot be restored into: the operator's to fix. */
export class RestoreRefused extends Error {}
