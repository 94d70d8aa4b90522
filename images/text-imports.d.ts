/** `import x from "file.policy" with { type: "text" }`: Bun embeds the file's text. */
declare module "*.policy" {
  const text: string;
  export default text;
}
