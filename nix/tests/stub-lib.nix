# A stand-in for the few nixpkgs `lib` functions nix/module.nix uses, so the module can be evaluated
# with a bare `nix-instantiate` where nixpkgs is not reachable (test/deploy/nix-module.test.ts).
# Options are plain records; eval.nix resolves them against a configuration. Same names and
# argument orders as nixpkgs' lib, so the module reads exactly as it does under the real one.
let
  leaf = name: check: { inherit name check; };
in
rec {
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = what: mkOption { type = types.bool; default = false; description = "Whether to enable ${what}."; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };

  types = {
    str = leaf "str" builtins.isString;
    bool = leaf "bool" builtins.isBool;
    int = leaf "int" builtins.isInt;
    port = leaf "port" (v: builtins.isInt v && v >= 0 && v <= 65535);
    path = leaf "path" (v: builtins.isPath v || (builtins.isString v && builtins.substring 0 1 v == "/"));
    package = leaf "package" (v: (builtins.isAttrs v && v ? outPath) || builtins.isString v);
    anything = leaf "anything" (_: true);
    enum = values: leaf "one of ${builtins.toJSON values}" (v: builtins.elem v values);
    nullOr = elemType: { name = "null or ${elemType.name}"; check = v: v == null || elemType.check v; inherit elemType; nullable = true; };
    listOf = elemType: { name = "list of ${elemType.name}"; check = builtins.isList; inherit elemType; list = true; };
    attrsOf = elemType: { name = "attribute set of ${elemType.name}"; check = builtins.isAttrs; inherit elemType; attrs = true; };
    submodule = module: { name = "submodule"; check = builtins.isAttrs; inherit (module) options; };
  };

  optional = condition: value: if condition then [ value ] else [ ];
  optionals = condition: values: if condition then values else [ ];
  all = builtins.all;
  any = builtins.any;
  concatStringsSep = builtins.concatStringsSep;
  mapAttrs = builtins.mapAttrs;
  attrNames = builtins.attrNames;
  filterAttrs = predicate: set:
    builtins.listToAttrs (builtins.concatMap
      (name: if predicate name set.${name} then [ { inherit name; value = set.${name}; } ] else [ ])
      (builtins.attrNames set));
  attrByPath = path: default: set:
    if path == [ ] then set
    else
      let head = builtins.head path; in
      if builtins.isAttrs set && set ? ${head} then attrByPath (builtins.tail path) default set.${head} else default;
  recursiveUpdate = left: right:
    left // builtins.mapAttrs
      (name: value:
        if builtins.isAttrs value && left ? ${name} && builtins.isAttrs left.${name}
        then recursiveUpdate left.${name} value
        else value)
      right;
}
