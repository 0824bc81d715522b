{
  "variables": {
    "ww_sanitize%": 0
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_cc": ["-std=c++17", "-fno-exceptions"],
    "conditions": [
      ["ww_sanitize==1", {
        "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "whirlwind",
      "sources": [
        "native/src/addon.cc",
        "native/src/engine.cc",
        "native/src/framer.cc",
        "native/src/protocol_check.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: an error raised while a worker
      # thread's environment is terminating is dropped instead of node-addon-api
      # calling a fatal error ("Error::ThrowAsJavaScriptException napi_throw",
      # seen once under Wine when a vitest fork ended with actor workers dying).
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/src/posix/net.cc",
            "native/src/linux/registry.cc",
            "native/src/linux/epoll.cc",
            "native/src/linux/io_uring.cc"
          ],
          "libraries": ["-lpthread"]
        }],
        ["OS=='win'", {
          "sources": [
            "native/src/win/net.cc",
            "native/src/win/registry.cc",
            "native/src/win/iocp.cc"
          ],
          "defines": ["WIN32_LEAN_AND_MEAN", "NOMINMAX"],
          "libraries": ["ws2_32.lib", "mswsock.lib"],
          "msvs_settings": {
            "VCCLCompilerTool": {
              "AdditionalOptions": ["/std:c++17", "/utf-8"],
              "ExceptionHandling": 0
            }
          }
        }]
      ]
    }
  ],
  "conditions": [
    ["OS=='linux'", {
      "targets": [
        {
          "target_name": "ww_loadgen",
          "type": "executable",
          "sources": ["bench/native/loadgen.c"],
          "cflags": ["-O2", "-std=gnu11"],
          "libraries": ["-lpthread", "-lm"]
        },
        {
          "target_name": "ww_c_echo",
          "type": "executable",
          "sources": ["bench/native/c-echo.c"],
          "cflags": ["-O2", "-std=gnu11"],
          "libraries": ["-lpthread"]
        }
      ]
    }]
  ]
}
