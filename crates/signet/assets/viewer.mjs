// Draws the order's PDF into #viewer with pdf.js (vendored, same origin). The page works without
// it: the download link stays. No eval, no inline script: the page's CSP allows only 'self'.
import * as pdfjs from "./pdf.min.mjs";

pdfjs.GlobalWorkerOptions.workerSrc = new URL("./pdf.worker.min.mjs", import.meta.url).href;

const viewer = document.getElementById("viewer");
if (viewer) {
  const load = pdfjs.getDocument({ url: viewer.dataset.src, isEvalSupported: false });
  load.promise
    .then(async (pdf) => {
      for (let number = 1; number <= pdf.numPages; number++) {
        const page = await pdf.getPage(number);
        const viewport = page.getViewport({ scale: 1.5 });
        const canvas = document.createElement("canvas");
        canvas.width = Math.floor(viewport.width);
        canvas.height = Math.floor(viewport.height);
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", `${number} / ${pdf.numPages}`);
        viewer.appendChild(canvas);
        await page.render({ canvasContext: canvas.getContext("2d"), viewport }).promise;
      }
      viewer.dataset.rendered = String(pdf.numPages);
    })
    .catch((error) => {
      viewer.dataset.failed = String(error && error.name);
    });
}
