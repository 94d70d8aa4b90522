/** The OpenTofu templates are imported as text (Bun bundles them into the compiled CLI). */
declare module "*.tf" {
  const text: string;
  export default text;
}
declare module "*.tfvars" {
  const text: string;
  export default text;
}
declare module "*.md" {
  const text: string;
  export default text;
}
