/**
 * SCRAM-SHA-256 password verifiers, as PostgreSQL stores them in pg_authid (RFC 5802/7677).
 * pgprov computes the verifier itself, so the plaintext password never reaches the server, its
 * logs or pg_stat_activity; and it checks a stored verifier against the wanted password with the
 * stored salt, so a password changed on the server is detected without reading any plaintext.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** True when `verifier` (from pg_authid.rolpassword) was made from `password`. */
export function verifierMatches(verifier: string, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!m) return false;
  const { storedKey } = keys(password, Buffer.from(m[2]!, "base64"), Number(m[1]));
  const stored = Buffer.from(m[3]!, "base64");
  return stored.length === storedKey.length && timingSafeEqual(stored, storedKey);
}

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  // PostgreSQL applies SASLprep; for the ASCII passwords pgprov generates (and most others) it is the identity.
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return {
    storedKey: createHash("sha256").update(clientKey).digest(),
    serverKey: createHmac("sha256", salted).update("Server Key").digest(),
  };
}
