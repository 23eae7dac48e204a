/**
 * Reads `.env` in the working directory (the project root under `npm start` and `npm run ...`)
 * into process.env, for the standalone server and the scripts; the plugin reads only the config it
 * is given. A variable already set in the real environment keeps its value (Node's loadEnvFile
 * does not overwrite), so a deployment can override any line of the file. No file, no change.
 * Returns whether a file was read.
 */
export function loadEnvFile(path = '.env'): boolean {
  try {
    process.loadEnvFile(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
