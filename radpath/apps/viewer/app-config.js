/** OHIF v3 config of radpath's local viewer: the DICOMweb view served at the same origin (/dicom-web). */
const ORIGIN = window.location.origin;
window.config = {
  name: 'radpath local viewer',
  routerBasename: '/',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  experimentalStudyBrowserSort: false,
  strictZSpacingForVolumeViewport: true,
  groupEnabledModesFirst: true,
  disableConfirmationPrompts: true,
  investigationalUseDialog: { option: 'never' },
  maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 25 },
  showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'radpath results',
        name: 'orthanc',
        wadoUriRoot: ORIGIN + '/wado',
        qidoRoot: ORIGIN + '/dicom-web',
        wadoRoot: ORIGIN + '/dicom-web',
        qidoSupportsIncludeField: false,
        supportsReject: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        bulkDataURI: { enabled: true, relativeResolution: 'studies' },
        omitQuotationForMultipartRequest: true,
      },
    },
  ],
  httpErrorHandler: error => { console.warn('httpError', error && error.status); },
};
// Test harness convenience: suppress the onboarding tour (Shepherd) so screenshots are clean.
try { localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour'])); } catch (e) {}
