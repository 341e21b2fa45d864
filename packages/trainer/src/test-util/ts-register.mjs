// `node --import` entry registering ts-hooks.mjs (see there).
import { register } from "node:module";

register(new URL("./ts-hooks.mjs", import.meta.url));
