# Evaluates nix/module.nix against stub-lib.nix and a configuration, the way the NixOS module
# system would for these option types: defaults filled in, unknown options and wrong types refused,
# `mkIf` resolved. Prints what the system would get: /etc/centra-pxe/config.yaml, the service,
# the firewall, the user and the failed assertions.
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/tests/eval.nix { configuration = import ./nix/tests/seed-config.nix; }'
{ configuration, module ? ../module.nix }:
let
  lib = import ./stub-lib.nix;
  fakePackage = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
  pkgs = {
    callPackage = _file: _args: fakePackage "centra-pxe-0.1.0";
    ipxe = fakePackage "ipxe-1.21.1";
    coreutils = fakePackage "coreutils-9.5";
  };

  isOption = value: builtins.isAttrs value && (value._type or null) == "option";
  absent = { _absent = true; };
  isAbsent = value: builtins.isAttrs value && value ? _absent;

  # One option tree (a set of options and sets of them) against the values given for it.
  resolveTree = path: options: values:
    let
      unknown = builtins.filter (name: !(options ? ${name})) (builtins.attrNames values);
    in
    if unknown != [ ] then throw "The option `${path}.${builtins.head unknown}' does not exist."
    else builtins.mapAttrs (name: declared: resolve "${path}.${name}" declared (values.${name} or absent)) options;

  resolve = path: declared: value:
    if isOption declared then
      (if isAbsent value then
        (if declared ? default then coerce path declared.type declared.default
         else throw "The option `${path}' is used but not defined.")
      else coerce path declared.type value)
    else if isAbsent value then resolveTree path declared { }
    else resolveTree path declared value;

  coerce = path: type: value:
    if !(type.check value) then throw "The option `${path}' is not of type `${type.name}': ${builtins.toJSON value}"
    else if type ? options then resolveTree path type.options value
    else if type ? attrs then builtins.mapAttrs (name: coerce "${path}.${name}" type.elemType) value
    else if type ? nullable then (if value == null then null else coerce path type.elemType value)
    else value;

  # mkIf/mkMerge as the module system applies them to a definition.
  apply = value:
    if builtins.isAttrs value && (value._type or null) == "if" then (if value.condition then apply value.content else absent)
    else if builtins.isAttrs value && (value._type or null) == "merge" then
      builtins.foldl' (merged: next: lib.recursiveUpdate merged (apply next)) { } value.contents
    else if builtins.isAttrs value && !(value ? outPath) then
      lib.filterAttrs (_: v: !(isAbsent v)) (builtins.mapAttrs (_: apply) value)
    else value;

  evaluated = import module { inherit lib pkgs; config = resolved; };
  resolved = {
    services.centra-pxe-server = resolve "services.centra-pxe-server"
      evaluated.options.services.centra-pxe-server (configuration.services.centra-pxe-server or { });
  };
  applied = apply evaluated.config;
  result = if isAbsent applied then { } else applied;
in
{
  enabled = result != { };
  configYaml = result.environment.etc."centra-pxe/config.yaml".text or null;
  service = result.systemd.services.centra-pxe or null;
  firewall = result.networking.firewall or null;
  users = result.users or null;
  tmpfiles = result.systemd.tmpfiles.rules or [ ];
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (result.assertions or [ ]));
}
