# node-gyp build of the batched-UDP addon (udp_batch.c). Linux only: other
# platforms build nothing and the DNS workers use node:dgram.
#   node-gyp rebuild --directory native     → native/build/Release/opengslb_udp.node
{
  "targets": [
    {
      "target_name": "opengslb_udp",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["udp_batch.c"],
          "defines": ["NAPI_VERSION=8"],
          "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
          "cflags!": ["-Wno-unused-parameter"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
