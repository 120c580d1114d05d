import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Pure modules run in node; DOM tests opt into jsdom with a file comment.
    environment: "node",
    watch: false,
  },
});
