# The centra-pxe package: `pkgs.callPackage ./nix/package.nix { }` (nix/module.nix's default).
# The TypeScript build and both native addons (ours and better-sqlite3's) are compiled against this
# nodejs's headers in the sandbox; nothing is downloaded but the npm dependencies the lock file pins.
{ lib, buildNpmPackage, nodejs_20, python3 }:

buildNpmPackage {
  pname = "centra-pxe";
  version = "0.1.0";

  src = lib.cleanSourceWith {
    src = ../.;
    # What a checkout may hold that the build must not see (a developer's builds and modules).
    filter = path: _type: !(builtins.elem (baseNameOf path) [ "node_modules" "build" "dist" ".git" ]);
  };

  nodejs = nodejs_20;
  # After a change to package-lock.json: build once, and copy the hash Nix prints in its place.
  npmDepsHash = lib.fakeHash;

  nativeBuildInputs = [ python3 ]; # node-gyp
  # better-sqlite3's install script would try a prebuilt binary first; build it against our headers.
  npm_config_build_from_source = "true";
  npm_config_nodedir = nodejs_20;
  npmBuildScript = "build";

  # `npm pack` ships the addons' sources for `npm install -g` to build; here they are built already.
  postInstall = ''
    mkdir -p $out/lib/node_modules/centra-pxe/build/Release
    cp build/Release/*.node $out/lib/node_modules/centra-pxe/build/Release/
  '';

  meta = {
    description = "Bare-metal network-boot and provisioning server: DHCP, TFTP, HTTP and iPXE in one daemon";
    license = lib.licenses.asl20;
    mainProgram = "centra-pxe";
    platforms = lib.platforms.linux;
  };
}
