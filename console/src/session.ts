/**
 * The signed-in admin key lives in this tab's sessionStorage only: it survives a reload, is gone when the
 * tab closes, and is never written to localStorage, a cookie or a URL.
 */
const KEY = "keyward.console.adminKey";

export const storedAdminKey = (): string | null => sessionStorage.getItem(KEY);
export const storeAdminKey = (key: string): void => sessionStorage.setItem(KEY, key);
export const forgetAdminKey = (): void => sessionStorage.removeItem(KEY);
