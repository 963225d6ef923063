# Native build (node-gyp; `npm install` runs `node-gyp rebuild`).
#   kbypass        -> build/Release/kbypass.node   the Node-API addon (native/*.c)
#   kbypass-floor  -> build/Release/kbypass-floor  the C benchmark floor (native/floor/floor.c)
#   kbypass-xdp-floor -> build/Release/kbypass-xdp-floor  the C AF_XDP floor (native/floor/xdp-floor.c + native/xsk.c)
{
  "target_defaults": {
    "defines": ["_GNU_SOURCE"],
    "cflags_c": ["-std=c11"],
    "cflags": ["-Wall", "-Wextra"],
    "configurations": {
      "Release": {
        # node's common.gypi asks for -O3; this project builds with -O2.
        "cflags!": ["-O3"],
        "cflags": ["-O2"]
      }
    }
  },
  "targets": [
    {
      "target_name": "kbypass",
      "defines": ["NAPI_VERSION=8"],
      "sources": [
        "native/addon.c",
        "native/args.c",
        "native/errors.c",
        "native/region.c",
        "native/doorbell.c",
        "native/unixsock.c",
        "native/watcher.c",
        "native/xsk.c",
        "native/xdp.c",
        "native/packet.c"
      ]
    },
    {
      "target_name": "kbypass-floor",
      "type": "executable",
      "sources": ["native/floor/floor.c"]
    },
    {
      "target_name": "kbypass-xdp-floor",
      "type": "executable",
      "defines": ["_GNU_SOURCE"],
      "sources": ["native/floor/xdp-floor.c", "native/xsk.c"]
    }
  ]
}
