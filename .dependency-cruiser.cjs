/**
 * The layers of src/: a folder is a layer, and a layer imports only the layers below it (listed
 * here with what each may import). `npm test` runs this; `npx depcruise src` alone shows every
 * violation. See README, "How it works".
 */
const LAYERS = {
  common: [],
  yaml: ["common"],
  // OpenSSH's client configuration, read as ssh -G reads it (issue 13): for transport to use.
  sshconfig: ["common"],
  transport: ["common", "sshconfig"],
  // The cluster's certificate authority and the hosts' certificates (issue 10).
  tls: ["common"],
  playbook: ["common", "yaml"],
  // engine imports transport only in host-io.ts, the real HostIO (see the rule below).
  engine: ["common", "playbook", "transport"],
  // tls for tls_certificate (a generic module: a certificate from a CA, for any server).
  modules: ["common", "engine", "tls"],
  postgres: ["common", "engine", "modules"],
  // sshconfig to resolve each host's connection; transport for unlocking keys; tls to check the CA
  // and certificates it names.
  inventory: ["common", "yaml", "sshconfig", "transport", "tls", "postgres"],
  cluster: ["common", "yaml", "sshconfig", "transport", "tls", "playbook", "engine", "modules", "postgres", "inventory"],
  output: ["common", "engine", "cluster"],
  cli: ["common", "yaml", "sshconfig", "transport", "tls", "playbook", "engine", "modules", "postgres", "inventory", "cluster", "output"],
};

const forbidden = Object.entries(LAYERS).map(([layer, below]) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ may import only ${below.length ? below.map((l) => `src/${l}/`).join(", ") : "nothing of src/"} (and itself)`,
  severity: "error",
  from: { path: `^src/${layer}/` },
  to: { path: "^src/", pathNot: `^src/(${[layer, ...below].join("|")})/` },
}));

module.exports = {
  forbidden: [
    ...forbidden,
    {
      name: "layer-folders",
      comment: "every file of src/ is in a layer's folder",
      severity: "error",
      from: { path: "^src/", pathNot: `^src/(${Object.keys(LAYERS).join("|")})/` },
      to: {},
    },
    {
      name: "engine-transport-only-in-host-io",
      comment: "the engine reaches hosts through HostIO; only its SSH implementation (engine/host-io.ts) knows transport",
      severity: "error",
      from: { path: "^src/engine/", pathNot: "^src/engine/host-io\\.ts$" },
      to: { path: "^src/transport/" },
    },
    {
      name: "no-circular",
      comment: "no import cycles, inside a layer either",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
