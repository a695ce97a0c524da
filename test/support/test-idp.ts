import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

/**
 * An OpenID Connect provider made by the test: keys generated per run (RS256, ES256, EdDSA), the
 * discovery document and the JWKS served on a loopback port, tokens signed on request. Also the
 * forgeries a stranger would try, made by hand where jose rightly refuses to make them.
 */

export type Algorithm = "RS256" | "ES256" | "EdDSA";
const ALGORITHMS: Algorithm[] = ["RS256", "ES256", "EdDSA"];

interface SigningKey {
  kid: string;
  alg: Algorithm;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export interface SignOptions {
  alg?: Algorithm;
  /** Seconds from now; default 300. Negative: already expired. */
  expiresIn?: number;
  /** Seconds from now the token becomes valid. */
  notBefore?: number;
  issuer?: string;
  audience?: string;
  /** A key that is not published (an unknown kid, or a stranger's key under a published kid). */
  unpublished?: { kid: string };
  /** Leave `exp` out. */
  noExpiry?: boolean;
}

export interface TestIdp {
  /** `http://127.0.0.1:<port>/realms/centra`. */
  issuer: string;
  jwksUrl: string;
  audience: string;
  /** Requests served, by path. */
  requests: Map<string, number>;
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** Publish a new key for `alg` and sign with it from now on; the old one is withdrawn. */
  rotate(alg?: Algorithm): Promise<void>;
  /** The published RS256 key as PEM (what an HS256-with-the-public-key forgery uses as its secret). */
  publicPem(alg?: Algorithm): string;
  /** The kid of the key signing `alg` now. */
  kid(alg?: Algorithm): string;
  close(): Promise<void>;
}

let generation = 0;

async function makeKey(alg: Algorithm, kid = `${alg.toLowerCase()}-${++generation}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

export async function startTestIdp(options: { audience?: string } = {}): Promise<TestIdp> {
  const keys = new Map<Algorithm, SigningKey>();
  for (const alg of ALGORITHMS) keys.set(alg, await makeKey(alg));
  const requests = new Map<string, number>();
  // A key nobody published, made once (an RSA key takes a while), signing under whatever kid is asked.
  const strangers = new Map<Algorithm, Promise<SigningKey>>();
  const strangerKey = (alg: Algorithm) => {
    let key = strangers.get(alg);
    if (!key) strangers.set(alg, (key = makeKey(alg, "stranger")));
    return key;
  };
  let issuer = "";
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0]!;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const send = (body: unknown) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    if (path === "/realms/centra/.well-known/openid-configuration")
      send({
        issuer,
        jwks_uri: `${issuer}/protocol/openid-connect/certs`,
        id_token_signing_alg_values_supported: ALGORITHMS,
      });
    else if (path === "/realms/centra/protocol/openid-connect/certs")
      send({ keys: [...keys.values()].map((key) => key.publicJwk) });
    else {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  issuer = `http://127.0.0.1:${port}/realms/centra`;
  const audience = options.audience ?? "centra-pxe";

  return {
    issuer,
    jwksUrl: `${issuer}/protocol/openid-connect/certs`,
    audience,
    requests,
    async sign(claims, signOptions = {}) {
      const alg = signOptions.alg ?? "RS256";
      const key = signOptions.unpublished
        ? { ...(await strangerKey(alg)), kid: signOptions.unpublished.kid }
        : keys.get(alg)!;
      const now = Math.floor(Date.now() / 1000);
      let jwt = new SignJWT(claims)
        .setProtectedHeader({ alg, kid: key.kid, typ: "JWT" })
        .setIssuer(signOptions.issuer ?? issuer)
        .setAudience(signOptions.audience ?? audience)
        .setIssuedAt(now);
      if (!signOptions.noExpiry) jwt = jwt.setExpirationTime(now + (signOptions.expiresIn ?? 300));
      if (signOptions.notBefore !== undefined) jwt = jwt.setNotBefore(now + signOptions.notBefore);
      return jwt.sign(key.privateKey);
    },
    async rotate(alg = "RS256") {
      keys.set(alg, await makeKey(alg));
    },
    publicPem: (alg = "RS256") => keys.get(alg)!.publicPem,
    kid: (alg = "RS256") => keys.get(alg)!.kid,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** `alg: none`: no signature at all (RFC 7519 §6.1), the oldest forgery. */
export function unsignedJwt(header: Record<string, unknown>, payload: JWTPayload): string {
  return `${b64({ ...header, alg: "none" })}.${b64(payload)}.`;
}

/** HS256 with the issuer's public key (PEM text) as the HMAC secret: the algorithm-confusion forgery (RFC 8725 §2.1). */
export function hmacWithPublicKey(kid: string, payload: JWTPayload, publicPem: string): string {
  const input = `${b64({ alg: "HS256", kid, typ: "JWT" })}.${b64(payload)}`;
  return `${input}.${createHmac("sha256", publicPem).update(input).digest("base64url")}`;
}

/** A valid token with its payload swapped (the signature kept): a tampered claim. */
export function tamperedJwt(jwt: string, change: (payload: JWTPayload) => JWTPayload): string {
  const [header, payload, signature] = jwt.split(".") as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as JWTPayload;
  return `${header}.${b64(change(claims))}.${signature}`;
}
