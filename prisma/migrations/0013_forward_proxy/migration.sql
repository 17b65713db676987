-- Transparent mode (src/forward-proxy): the forward proxy's own certificate authority, and per upstream
-- the private CA its TLS is verified against and the placeholder variables `keyward run` sets.

-- The CA that issues the certificates the forward proxy presents inside CONNECT tunnels. Its private key
-- is encrypted by the vault like every other secret. One row is active (retiredAt null); a rotation
-- retires it and inserts the next.
CREATE TABLE "ForwardProxyCa" (
  "id"            TEXT PRIMARY KEY,
  "certPem"       TEXT NOT NULL,
  "keyCiphertext" TEXT NOT NULL,
  "keyId"         TEXT NOT NULL,
  "createdAt"     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "retiredAt"     TIMESTAMP(3)
);
CREATE UNIQUE INDEX "ForwardProxyCa_one_active" ON "ForwardProxyCa" ((1)) WHERE "retiredAt" IS NULL;
-- Every replica drops its CA at once when another rotates it (src/revocation/row-cache.ts).
CREATE TRIGGER "ForwardProxyCa_notify" AFTER INSERT OR UPDATE OR DELETE ON "ForwardProxyCa"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('ForwardProxyCa', 'id');

-- PEM of the CA an upstream's certificate chains to, when it is not a public one (null: the system's).
ALTER TABLE "Upstream" ADD COLUMN "tlsCa" TEXT;
-- Environment variables `keyward run` fills with placeholders for this upstream (GITHUB_TOKEN, ...).
ALTER TABLE "Upstream" ADD COLUMN "placeholders" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
